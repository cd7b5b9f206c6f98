package bus

import (
	"context"
	"errors"
	"testing"
	"time"

	"cissan/internal/chain"
)

func TestInProcDelivers(t *testing.T) {
	b := NewInProc()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := b.SubmitBatch(ctx, &Batch{}); !errors.Is(err, ErrNoReceiver) {
		t.Fatalf("SubmitBatch with no master = %v, want ErrNoReceiver", err)
	}
	b.HandleBatches(func(_ context.Context, batch *Batch) ([]Refusal, error) {
		return []Refusal{{UID: batch.HubID}}, nil
	})
	ref, err := b.SubmitBatch(ctx, &Batch{HubID: "hub-1"})
	if err != nil || len(ref) != 1 || ref[0].UID != "hub-1" {
		t.Fatalf("SubmitBatch = %v, %v", ref, err)
	}

	got := map[string]chan uint64{"hub-1": make(chan uint64, 4), "hub-2": make(chan uint64, 4)}
	for name, c := range got {
		go b.ConsumeBlocks(ctx, name, func(_ context.Context, blk *chain.Block) error {
			c <- blk.Header.Height
			return nil
		})
	}
	waitSubscribers(t, b, 2)
	if err := b.ConsumeBlocks(ctx, "hub-1", nil); err == nil {
		t.Fatal("a second subscriber under one name was allowed")
	}
	if err := b.PublishBlock(ctx, &chain.Block{Header: chain.Header{Height: 7}}); err != nil {
		t.Fatal(err)
	}
	for name, c := range got {
		select {
		case h := <-c:
			if h != 7 {
				t.Fatalf("%s got block %d, want 7", name, h)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s got no block", name)
		}
	}
}

func TestInProcPushesBack(t *testing.T) {
	b := NewInProc()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	block := make(chan struct{})
	go b.ConsumeValidations(ctx, "slow", func(context.Context, *chain.Validation) error {
		<-block // a subscriber that never finishes
		return nil
	})
	waitSubscribers(t, b, 0)
	pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer pcancel()
	var err error
	for i := 0; i < QueueDepth+2 && err == nil; i++ {
		err = b.PublishValidation(pctx, &chain.Validation{})
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publishing to a stuck subscriber = %v, want it to wait until the context ends", err)
	}
	close(block)
}

// waitSubscribers waits until n block subscribers (or, for n == 0, one
// validation subscriber) are registered.
func waitSubscribers(t *testing.T, b *InProc, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b.mu.RLock()
		ok := len(b.blockSubs) == n && (n > 0 || len(b.validations) == 1)
		b.mu.RUnlock()
		if ok {
			return
		}
	}
	t.Fatal("subscribers did not register")
}
