package hub

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newBucket(10, 5, t0)
	for i := range 5 {
		if !b.take(1, t0) {
			t.Fatalf("take %d of a full bucket of 5 refused", i)
		}
	}
	if b.take(1, t0) {
		t.Fatal("an empty bucket gave a token")
	}
	if !b.take(1, t0.Add(100*time.Millisecond)) || b.take(1, t0.Add(100*time.Millisecond)) {
		t.Fatal("a tenth of a second at 10/s is one token")
	}
	if !b.take(5, t0.Add(time.Hour)) || b.take(1, t0.Add(time.Hour)) {
		t.Fatal("a bucket saves no more than its burst")
	}
	if b.take(1, t0) {
		t.Fatal("time going backwards gave a token")
	}
}

// A login guard throttles an address at its limit, for the rest of its
// window only, and logs the first failure's burst once, then a summary.
func TestLoginGuard(t *testing.T) {
	var logs strings.Builder
	g := newLoginGuard(3, time.Minute, slog.New(slog.NewTextHandler(&logs, nil)))
	t0 := time.Unix(1000, 0)
	first := g.failed("10.0.0.1", "a", t0)
	for i := range 2 {
		if g.throttled("10.0.0.1", t0) {
			t.Fatalf("throttled after %d failures of 3", i+1)
		}
		if g.failed("10.0.0.1", "b", t0.Add(time.Second)) {
			t.Fatal("a later failure of the window is reported as its first")
		}
	}
	if !first {
		t.Fatal("the first failure of a window is not reported as such")
	}
	if !g.throttled("10.0.0.1", t0.Add(30*time.Second)) {
		t.Fatal("not throttled at the limit")
	}
	if g.throttled("10.0.0.2", t0) {
		t.Fatal("another address is throttled")
	}
	if g.throttled("10.0.0.1", t0.Add(time.Minute)) {
		t.Fatal("still throttled once the window ended")
	}
	out := logs.String()
	if !strings.Contains(out, "device logins throttled") || !strings.Contains(out, `msg="device logins refused" remote=10.0.0.1 failures=3`) {
		t.Fatalf("logs:\n%s", out)
	}
}
