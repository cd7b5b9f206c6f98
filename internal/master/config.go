package master

import (
	"encoding/json"
	"errors"
	"fmt"

	"cissan/internal/analyze"
	"cissan/internal/chain"
	"cissan/internal/store"
)

// pendingConfigKey holds an analyzer configuration waiting for the next
// block, so that a restart between the operator's request and the block
// does not lose it.
const pendingConfigKey = "pending-analyzers"

// SetAnalyzers queues an analyzer configuration for the next block, whose
// tags it decides, and those of the blocks after. A newer request replaces
// one still waiting.
func (m *Master) SetAnalyzers(raw []byte) error {
	cfg, err := analyze.ParseConfig(raw)
	if err != nil {
		return err
	}
	// A mint reads the pending configuration and deletes it with the
	// block; one in progress must not delete a newer one written meanwhile.
	m.mintMu.Lock()
	defer m.mintMu.Unlock()
	b := m.led.Store().NewBatch()
	defer b.Close()
	if err := b.PutMeta(pendingConfigKey, cfg.Encode()); err != nil {
		return err
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("queue analyzer config: %w", err)
	}
	m.log.Info("analyzer config queued for the next block")
	return nil
}

// PendingAnalyzers returns the configuration waiting for the next block,
// or nil.
func (m *Master) PendingAnalyzers() ([]byte, error) {
	raw, err := m.led.Store().Meta(pendingConfigKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return raw, err
}

// pendingControls returns the control records the next block carries:
// the analyzer configuration waiting, if any, then the hubs to enrol.
func (m *Master) pendingControls() ([][]byte, error) {
	var out [][]byte
	raw, err := m.PendingAnalyzers()
	if err != nil {
		return nil, err
	}
	if raw != nil {
		out = append(out, chain.Control{Kind: chain.ControlAnalyzers, Body: raw}.Encode())
	}
	hubs, err := m.PendingHubs()
	if err != nil {
		return nil, err
	}
	for _, e := range hubs {
		out = append(out, e.Encode())
	}
	return out, nil
}

// pendingHubsKey holds the hubs waiting for the next block to enrol them.
const pendingHubsKey = "pending-hubs"

// PendingHubs returns the hubs the next block will enrol.
func (m *Master) PendingHubs() ([]chain.Enrolment, error) {
	raw, err := m.led.Store().Meta(pendingHubsKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []chain.Enrolment
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("pending hubs: %w", err)
	}
	return out, nil
}

// EnrolHub queues a hub for the next block, which records it on the chain;
// the hub may submit and validate from the block after. The quorum does
// not change.
func (m *Master) EnrolHub(e chain.Enrolment) error {
	_, key, err := chain.ParseEnrolment(mustJSON(e))
	if err != nil {
		return err
	}
	m.mintMu.Lock()
	defer m.mintMu.Unlock()
	pending, err := m.PendingHubs()
	if err != nil {
		return err
	}
	net := m.led.Network()
	for _, p := range pending {
		_, k, _ := chain.ParseEnrolment(mustJSON(p))
		if net, err = net.Enrol(p.ID, k, 0); err != nil {
			return err
		}
	}
	if h := net.Hub(e.ID); h != nil {
		return fmt.Errorf("hub %s is already enrolled", e.ID)
	}
	if _, err := net.Enrol(e.ID, key, 0); err != nil {
		return err
	}
	b := m.led.Store().NewBatch()
	defer b.Close()
	if err := b.PutMeta(pendingHubsKey, mustJSON(append(pending, e))); err != nil {
		return err
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("queue hub enrolment: %w", err)
	}
	m.log.Info("hub enrolment queued for the next block", "hub", e.ID)
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err)) // structs of strings always encode
	}
	return b
}

// initAnalyzers queues the initial configuration when the chain has none
// yet, so that the first block puts it in force.
func (m *Master) initAnalyzers(initial *analyze.Config) error {
	if initial == nil || len(m.led.Configs()) > 0 {
		return nil
	}
	if p, err := m.PendingAnalyzers(); err != nil || p != nil {
		return err
	}
	return m.SetAnalyzers(initial.Encode())
}
