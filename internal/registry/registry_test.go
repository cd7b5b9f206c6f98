package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTest(t *testing.T) (*Registry, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.db")
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, path
}

func mustAdd(t *testing.T, r *Registry, ns, uid string) string {
	t.Helper()
	_, tok, err := r.Add(context.Background(), ns, uid)
	if err != nil {
		t.Fatalf("add %s: %v", uid, err)
	}
	return tok
}

func TestAdd(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	mustAdd(t, r, "acme/plant1", "dev-1")

	tests := []struct {
		name, ns, uid string
		want          error
		msg           string // part of the error message
	}{
		{"ok", "acme/plant1", "dev-2", nil, ""},
		{"uid with all allowed bytes", "acme/plant1", "AZaz09-_.:", nil, ""},
		{"uid of 128 bytes", "acme/plant1", strings.Repeat("u", 128), nil, ""},
		{"duplicate", "acme/plant1", "dev-1", ErrExists, "already exists"},
		{"duplicate in other namespace", "acme/plant2", "dev-1", ErrExists, "already exists"},
		{"empty uid", "acme/plant1", "", ErrInvalid, "device_uid: must not be empty"},
		{"uid too long", "acme/plant1", strings.Repeat("u", 129), ErrInvalid, "at most 128"},
		{"uid with slash", "acme/plant1", "a/b", ErrInvalid, "device_uid: may hold only"},
		{"uid with space", "acme/plant1", "a b", ErrInvalid, "device_uid"},
		{"namespace without slash", "acme", "dev-3", ErrInvalid, "namespace: must be org/group"},
		{"namespace with two slashes", "acme/a/b", "dev-3", ErrInvalid, "namespace"},
		{"namespace empty group", "acme/", "dev-3", ErrInvalid, "namespace: must not be empty"},
		{"namespace empty", "", "dev-3", ErrInvalid, "namespace"},
		{"namespace part too long", "acme/" + strings.Repeat("g", 65), "dev-3", ErrInvalid, "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, tok, err := r.Add(ctx, tt.ns, tt.uid)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Add(%q, %q) error = %v, want %v", tt.ns, tt.uid, err, tt.want)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("error %q does not contain %q", err, tt.msg)
				}
				if tok != "" {
					t.Errorf("token returned with error")
				}
				return
			}
			if d.UID != tt.uid || d.Namespace != tt.ns || d.Status != StatusActive {
				t.Errorf("device = %+v", d)
			}
			if d.CreatedAt.IsZero() || !d.CreatedAt.Equal(d.UpdatedAt) || !d.CreatedAt.Equal(d.TokenRotatedAt) {
				t.Errorf("times = %+v", d)
			}
			if !strings.HasPrefix(tok, "cst_") || len(tok) != 4+43 {
				t.Errorf("token %q is not cst_ + 43 base64url characters", tok)
			}
			got, err := r.Get(ctx, tt.uid)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, d) {
				t.Errorf("Get = %+v, Add returned %+v", got, d)
			}
		})
	}
}

func TestTransitions(t *testing.T) {
	type step struct {
		op         string // deactivate, reactivate, revoke, rotate
		want       error
		wantStatus Status
		notified   bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"deactivate then reactivate", []step{
			{"deactivate", nil, StatusInactive, true},
			{"reactivate", nil, StatusActive, true},
		}},
		{"deactivate twice is a no-op", []step{
			{"deactivate", nil, StatusInactive, true},
			{"deactivate", nil, StatusInactive, false},
		}},
		{"reactivate an active device is a no-op", []step{
			{"reactivate", nil, StatusActive, false},
		}},
		{"rotate keeps status", []step{
			{"deactivate", nil, StatusInactive, true},
			{"rotate", nil, StatusInactive, true},
			{"reactivate", nil, StatusActive, true},
			{"rotate", nil, StatusActive, true},
		}},
		{"revoke is final", []step{
			{"revoke", nil, StatusRevoked, true},
			{"reactivate", ErrRevoked, StatusRevoked, false},
			{"rotate", ErrRevoked, StatusRevoked, false},
			{"deactivate", ErrRevoked, StatusRevoked, false},
			{"revoke", ErrRevoked, StatusRevoked, false},
		}},
		{"revoke an inactive device", []step{
			{"deactivate", nil, StatusInactive, true},
			{"revoke", nil, StatusRevoked, true},
			{"reactivate", ErrRevoked, StatusRevoked, false},
		}},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := openTest(t)
			mustAdd(t, r, "acme/plant1", "dev")
			var changes []Change
			r.Subscribe(func(c Change) { changes = append(changes, c) })
			for i, s := range tt.steps {
				before := len(changes)
				var err error
				var d Device
				switch s.op {
				case "deactivate":
					d, err = r.Deactivate(ctx, "dev")
				case "reactivate":
					d, err = r.Reactivate(ctx, "dev")
				case "revoke":
					d, err = r.Revoke(ctx, "dev")
				case "rotate":
					var tok string
					d, tok, err = r.Rotate(ctx, "dev")
					if err == nil && !strings.HasPrefix(tok, "cst_") {
						t.Errorf("step %d: rotate token %q", i, tok)
					}
				}
				if !errors.Is(err, s.want) {
					t.Fatalf("step %d %s: error = %v, want %v", i, s.op, err, s.want)
				}
				if err == nil && d.Status != s.wantStatus {
					t.Errorf("step %d %s: returned status %s, want %s", i, s.op, d.Status, s.wantStatus)
				}
				stored, err := r.Get(ctx, "dev")
				if err != nil {
					t.Fatal(err)
				}
				if stored.Status != s.wantStatus {
					t.Errorf("step %d %s: stored status %s, want %s", i, s.op, stored.Status, s.wantStatus)
				}
				if got := len(changes) > before; got != s.notified {
					t.Errorf("step %d %s: notified = %v, want %v", i, s.op, got, s.notified)
				}
			}
		})
	}
}

func TestTransitionsUnknownDevice(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	ops := map[string]func() error{
		"get":        func() error { _, err := r.Get(ctx, "nope"); return err },
		"deactivate": func() error { _, err := r.Deactivate(ctx, "nope"); return err },
		"reactivate": func() error { _, err := r.Reactivate(ctx, "nope"); return err },
		"revoke":     func() error { _, err := r.Revoke(ctx, "nope"); return err },
		"rotate":     func() error { _, _, err := r.Rotate(ctx, "nope"); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: error = %v, want ErrNotFound", name, err)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	active := mustAdd(t, r, "acme/a", "active")
	inactive := mustAdd(t, r, "acme/a", "inactive")
	revoked := mustAdd(t, r, "acme/a", "revoked")
	old := mustAdd(t, r, "acme/a", "rotated")
	other := mustAdd(t, r, "acme/a", "other")
	if _, err := r.Deactivate(ctx, "inactive"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revoke(ctx, "revoked"); err != nil {
		t.Fatal(err)
	}
	_, rotated, err := r.Rotate(ctx, "rotated")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, uid, token string
		want             error
	}{
		{"right token", "active", active, nil},
		{"wrong token", "active", other, ErrBadToken},
		{"token with a changed byte", "active", active[:len(active)-1] + "x", ErrBadToken},
		{"empty token", "active", "", ErrBadToken},
		{"unknown device", "ghost", active, ErrBadToken},
		{"empty uid", "", active, ErrBadToken},
		{"inactive with right token", "inactive", inactive, ErrInactive},
		{"inactive with wrong token", "inactive", active, ErrBadToken},
		{"revoked with right token", "revoked", revoked, ErrRevoked},
		{"revoked with wrong token", "revoked", active, ErrBadToken},
		{"old token after rotate", "rotated", old, ErrBadToken},
		{"new token after rotate", "rotated", rotated, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := r.Authenticate(ctx, tt.uid, tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Authenticate(%q) error = %v, want %v", tt.uid, err, tt.want)
			}
			if err == nil && (d.UID != tt.uid || d.Status != StatusActive) {
				t.Errorf("device = %+v", d)
			}
		})
	}
}

// TestTokenNotStoredInClear reads every byte the registry wrote to disk and
// checks that no token, nor any part of one, is among them.
func TestTokenNotStoredInClear(t *testing.T) {
	ctx := context.Background()
	r, path := openTest(t)
	var tokens []string
	for i := range 20 {
		tokens = append(tokens, mustAdd(t, r, "acme/a", fmt.Sprintf("dev-%02d", i)))
	}
	for i := range 5 {
		_, tok, err := r.Rotate(ctx, fmt.Sprintf("dev-%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
	}
	// Look at the WAL before the checkpoint, and at the main file after it.
	var files [][]byte
	readAll := func() {
		entries, err := os.ReadDir(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(path), e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, b)
		}
	}
	readAll()
	if _, err := r.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	readAll()
	all := bytes.Join(files, nil)
	if !bytes.Contains(all, []byte("dev-07")) {
		t.Fatal("device uid not found on disk: the test reads the wrong files")
	}
	for i, tok := range tokens {
		// The random part alone, and a 16-byte piece of it, must not appear.
		body := strings.TrimPrefix(tok, "cst_")
		for _, s := range []string{tok, body, body[10:26]} {
			if bytes.Contains(all, []byte(s)) {
				t.Errorf("token fragment %q found on disk", s)
			}
		}
		sum := hashToken(tok)
		if i < 5 {
			continue // rotated away; its hash has been overwritten in place
		}
		if !bytes.Contains(all, sum[:]) {
			t.Errorf("SHA-256 of a current token not found on disk")
		}
	}
}

func TestSubscribe(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	mustAdd(t, r, "acme/a", "d1")
	var got1, got2 []Change
	cancel1 := r.Subscribe(func(c Change) { got1 = append(got1, c) })
	r.Subscribe(func(c Change) {
		// A subscriber may read the registry: the change is committed.
		d, err := r.Get(ctx, c.UID)
		if err != nil || d.Status != c.Status {
			t.Errorf("in subscriber: Get = %+v, %v; change %+v", d, err, c)
		}
		got2 = append(got2, c)
	})
	if _, err := r.Deactivate(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reactivate(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Rotate(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	cancel1()
	cancel1() // twice is harmless
	if _, err := r.Revoke(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{"d1", StatusInactive, ReasonDeactivated},
		{"d1", StatusActive, ReasonReactivated},
		{"d1", StatusActive, ReasonRotated},
		{"d1", StatusRevoked, ReasonRevoked},
	}
	if !reflect.DeepEqual(got2, want) {
		t.Errorf("subscriber 2 got %+v, want %+v", got2, want)
	}
	if !reflect.DeepEqual(got1, want[:3]) {
		t.Errorf("cancelled subscriber got %+v, want %+v", got1, want[:3])
	}
}

func TestCounts(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	got, err := r.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[Status]int{StatusActive: 0, StatusInactive: 0, StatusRevoked: 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("empty counts = %v, want %v", got, want)
	}
	for i := range 6 {
		mustAdd(t, r, "acme/a", fmt.Sprint("d", i))
	}
	r.Deactivate(ctx, "d0")
	r.Deactivate(ctx, "d1")
	r.Revoke(ctx, "d2")
	got, err = r.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[Status]int{StatusActive: 3, StatusInactive: 2, StatusRevoked: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("counts = %v, want %v", got, want)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	// Added out of order, to check that List sorts by uid.
	for _, d := range []struct{ ns, uid string }{
		{"acme/b", "c"}, {"acme/a", "a"}, {"acme/a", "e"}, {"acme/b", "b"}, {"acme/a", "d"},
	} {
		mustAdd(t, r, d.ns, d.uid)
	}
	r.Deactivate(ctx, "b")
	r.Revoke(ctx, "e")

	tests := []struct {
		name string
		f    ListFilter
		want string // uids, comma-separated
		err  error
	}{
		{"all", ListFilter{}, "a,b,c,d,e", nil},
		{"namespace", ListFilter{Namespace: "acme/a"}, "a,d,e", nil},
		{"status", ListFilter{Status: StatusActive}, "a,c,d", nil},
		{"namespace and status", ListFilter{Namespace: "acme/b", Status: StatusInactive}, "b", nil},
		{"after", ListFilter{After: "b"}, "c,d,e", nil},
		{"limit", ListFilter{Limit: 2}, "a,b", nil},
		{"after and limit", ListFilter{After: "b", Limit: 2}, "c,d", nil},
		{"huge limit is clamped", ListFilter{Limit: 1 << 30}, "a,b,c,d,e", nil},
		{"no match", ListFilter{Namespace: "other/x"}, "", nil},
		{"bad status", ListFilter{Status: "gone"}, "", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devs, err := r.List(ctx, tt.f)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if devs == nil {
				t.Error("List returned nil; want a non-nil slice so JSON shows []")
			}
			var uids []string
			for _, d := range devs {
				uids = append(uids, d.UID)
			}
			if got := strings.Join(uids, ","); got != tt.want {
				t.Errorf("uids = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	added, tok, err := r.Add(ctx, "acme/a", "dev")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := r.Authenticate(ctx, "dev", tok)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, added) {
		t.Errorf("after reopen: %+v, want %+v", d, added)
	}
}

// TestConcurrent runs logins against rotations, for the race detector and
// to check that rotation is atomic: of all tokens ever issued, exactly one
// works at the end.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	first := mustAdd(t, r, "acme/a", "dev")
	var mu sync.Mutex
	tokens := []string{first}
	notified := 0
	r.Subscribe(func(Change) { mu.Lock(); notified++; mu.Unlock() })

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				_, tok, err := r.Rotate(ctx, "dev")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				tokens = append(tokens, tok)
				mu.Unlock()
			}
		})
		wg.Go(func() {
			for range 20 {
				if _, err := r.Authenticate(ctx, "dev", "cst_wrong"); !errors.Is(err, ErrBadToken) {
					t.Errorf("wrong token: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	working := 0
	for _, tok := range tokens {
		if _, err := r.Authenticate(ctx, "dev", tok); err == nil {
			working++
		} else if !errors.Is(err, ErrBadToken) {
			t.Fatal(err)
		}
	}
	if working != 1 {
		t.Errorf("%d of %d tokens work, want 1", working, len(tokens))
	}
	if notified != 40 {
		t.Errorf("%d changes notified, want 40", notified)
	}
}

// TestOutboxKeepsUndeliveredChanges: every change is recorded for delivery
// in its own transaction, stays until delivered, and a change made while
// an earlier one is being delivered is kept.
func TestOutboxKeepsUndeliveredChanges(t *testing.T) {
	r, _ := openTest(t)
	ctx := context.Background()
	if _, _, err := r.Add(ctx, "a/b", "d1"); err != nil {
		t.Fatal(err)
	}
	if uids, _, _ := r.Undelivered(ctx); len(uids) != 0 {
		t.Fatalf("a new device is in the outbox: %v", uids)
	}
	if _, err := r.Deactivate(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	stamp, ok, err := r.Stamp(ctx, "d1")
	if err != nil || !ok {
		t.Fatalf("Stamp = %v, %v, %v", stamp, ok, err)
	}
	time.Sleep(2 * time.Microsecond)
	if _, err := r.Revoke(ctx, "d1"); err != nil { // while the first is being delivered
		t.Fatal(err)
	}
	if err := r.Delivered(ctx, "d1", stamp); err != nil {
		t.Fatal(err)
	}
	uids, stamps, err := r.Undelivered(ctx)
	if err != nil || len(uids) != 1 || uids[0] != "d1" {
		t.Fatalf("after delivering the first change: %v, %v; want the revocation kept", uids, err)
	}
	if err := r.Delivered(ctx, "d1", stamps[0]); err != nil {
		t.Fatal(err)
	}
	if uids, _, _ := r.Undelivered(ctx); len(uids) != 0 {
		t.Fatalf("outbox not empty after delivery: %v", uids)
	}
}
