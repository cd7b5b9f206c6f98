package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// cacheSetup is a hub's cache in front of a real registry over HTTP; stop
// takes the registry's HTTP server away, as an outage would.
type cacheSetup struct {
	reg    *Registry
	cache  *Cache
	tokens map[string]string
	logged *bytes.Buffer
	stop   func()
	clock  time.Time
}

func newCacheSetup(t *testing.T) *cacheSetup {
	t.Helper()
	reg, srv, tokens := authServer(t)
	s := &cacheSetup{reg: reg, tokens: tokens, logged: &bytes.Buffer{}, stop: srv.Close, clock: time.Now()}
	s.cache = NewCache(&Client{BaseURL: srv.URL, Token: testOperator, HTTP: srv.Client()}, time.Hour)
	s.cache.Log = slog.New(slog.NewTextHandler(s.logged, nil))
	s.cache.now = func() time.Time { return s.clock }
	t.Cleanup(func() {
		if strings.Contains(s.logged.String(), "cst_") {
			t.Errorf("the cache logged a token: %q", s.logged.String())
		}
	})
	return s
}

func (s *cacheSetup) login(uid, token string) (Device, error) {
	return s.cache.Authenticate(context.Background(), uid, token)
}

func (s *cacheSetup) mustLogin(t *testing.T, uid, token string) {
	t.Helper()
	if d, err := s.login(uid, token); err != nil || d.UID != uid || d.Status != StatusActive {
		t.Fatalf("login %s = %+v, %v; want the active device", uid, d, err)
	}
}

func (s *cacheSetup) mustRefuse(t *testing.T, uid, token string, want error) {
	t.Helper()
	if d, err := s.login(uid, token); !errors.Is(err, want) {
		t.Fatalf("login %s = %+v, %v; want %v", uid, d, err, want)
	}
}

func TestCacheAnswersThroughOutage(t *testing.T) {
	s := newCacheSetup(t)
	dev1 := s.tokens["dev1"]
	s.mustLogin(t, "dev1", dev1)
	s.stop()

	s.mustLogin(t, "dev1", dev1)
	if !strings.Contains(s.logged.String(), "accepted from cache") || !strings.Contains(s.logged.String(), "device=dev1") {
		t.Errorf("a login from the cache was not logged: %q", s.logged.String())
	}
	s.clock = s.clock.Add(59 * time.Minute)
	s.mustLogin(t, "dev1", dev1)

	s.mustRefuse(t, "dev1", s.tokens["dev2"], ErrUnreachable) // another token
	s.mustRefuse(t, "dev2", s.tokens["dev2"], ErrUnreachable) // never accepted
	s.mustRefuse(t, "dev1", "", ErrUnreachable)

	s.clock = s.clock.Add(time.Minute) // the registry accepted it an hour ago
	s.mustRefuse(t, "dev1", dev1, ErrUnreachable)
	if _, ok := s.cache.entries["dev1"]; ok {
		t.Error("an expired entry was kept")
	}
}

// The registry's word wins whenever it answers: the cache only fills in
// for it.
func TestCacheAsksRegistryFirst(t *testing.T) {
	s := newCacheSetup(t)
	ctx := context.Background()
	dev1 := s.tokens["dev1"]
	s.mustLogin(t, "dev1", dev1)
	if _, err := s.reg.Deactivate(ctx, "dev1"); err != nil {
		t.Fatal(err)
	}
	s.mustRefuse(t, "dev1", dev1, ErrInactive)
	if _, err := s.reg.Reactivate(ctx, "dev1"); err != nil {
		t.Fatal(err)
	}
	s.mustLogin(t, "dev1", dev1)
	if strings.Contains(s.logged.String(), "from cache") {
		t.Errorf("the cache answered while the registry was up: %q", s.logged.String())
	}
}

func TestCacheDropsRefusedLogins(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(t *testing.T, s *cacheSetup) // while the registry is up
		refuse error                             // what the next login with the cached token gets
	}{
		{"revoked", func(t *testing.T, s *cacheSetup) {
			if _, err := s.reg.Revoke(ctx, "dev1"); err != nil {
				t.Fatal(err)
			}
		}, ErrRevoked},
		{"deactivated", func(t *testing.T, s *cacheSetup) {
			if _, err := s.reg.Deactivate(ctx, "dev1"); err != nil {
				t.Fatal(err)
			}
		}, ErrInactive},
		{"rotated", func(t *testing.T, s *cacheSetup) {
			if _, _, err := s.reg.Rotate(ctx, "dev1"); err != nil {
				t.Fatal(err)
			}
		}, ErrBadToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newCacheSetup(t)
			dev1 := s.tokens["dev1"]
			s.mustLogin(t, "dev1", dev1)
			tt.change(t, s) // no Invalidate: the notice may have been lost
			s.mustRefuse(t, "dev1", dev1, tt.refuse)
			s.stop()
			s.mustRefuse(t, "dev1", dev1, ErrUnreachable)
		})
	}
}

// Someone else's wrong token must not evict a device's cached login, or
// anyone could make a device's logins fail in the next outage.
func TestCacheKeepsEntryOnOthersWrongToken(t *testing.T) {
	s := newCacheSetup(t)
	dev1 := s.tokens["dev1"]
	s.mustLogin(t, "dev1", dev1)
	s.mustRefuse(t, "dev1", "cst_guess", ErrBadToken)
	s.stop()
	s.mustLogin(t, "dev1", dev1)
}

func TestCacheInvalidate(t *testing.T) {
	s := newCacheSetup(t)
	s.mustLogin(t, "dev1", s.tokens["dev1"])
	s.cache.Invalidate("dev1")
	s.cache.Invalidate("ghost") // unknown: nothing happens
	s.stop()
	s.mustRefuse(t, "dev1", s.tokens["dev1"], ErrUnreachable)
}

// fakeAuth is an upstream whose answers a test scripts.
type fakeAuth struct {
	authenticate func(ctx context.Context, uid, token string) (Device, error)
}

func (f *fakeAuth) Authenticate(ctx context.Context, uid, token string) (Device, error) {
	return f.authenticate(ctx, uid, token)
}

// A login whose acceptance was on its way when the device changed must not
// be cached: the change would be undone in the next outage.
func TestCacheLoginRacingChange(t *testing.T) {
	asked, answer := make(chan struct{}), make(chan struct{})
	up := &fakeAuth{authenticate: func(context.Context, string, string) (Device, error) {
		close(asked)
		<-answer
		return Device{UID: "dev1", Status: StatusActive}, nil
	}}
	c := NewCache(up, time.Hour)
	c.Log = slog.New(slog.DiscardHandler)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := c.Authenticate(context.Background(), "dev1", "cst_t"); err != nil {
			t.Errorf("login = %v", err)
		}
	}()
	<-asked
	c.Invalidate("dev1") // the registry revoked dev1 meanwhile
	close(answer)
	wg.Wait()

	up.authenticate = func(context.Context, string, string) (Device, error) { return Device{}, ErrUnreachable }
	if _, err := c.Authenticate(context.Background(), "dev1", "cst_t"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("login after a racing change, registry down = %v; want ErrUnreachable", err)
	}
}

// A registry that hangs counts as unreachable after Timeout; a caller that
// gave up gets no answer from the cache.
func TestCacheTimeout(t *testing.T) {
	hang := false
	up := &fakeAuth{authenticate: func(ctx context.Context, uid, _ string) (Device, error) {
		if !hang {
			return Device{UID: uid, Status: StatusActive}, nil
		}
		<-ctx.Done()
		return Device{}, errors.Join(ErrUnreachable, ctx.Err())
	}}
	c := NewCache(up, DefaultCacheTTL)
	c.Log = slog.New(slog.DiscardHandler)
	c.Timeout = 20 * time.Millisecond
	ctx := context.Background()
	if _, err := c.Authenticate(ctx, "dev1", "cst_t"); err != nil {
		t.Fatal(err)
	}
	hang = true
	start := time.Now()
	if d, err := c.Authenticate(ctx, "dev1", "cst_t"); err != nil || d.UID != "dev1" {
		t.Fatalf("login while the registry hangs = %+v, %v; want dev1 from the cache", d, err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %s, want about the 20ms timeout", el)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := c.Authenticate(cctx, "dev1", "cst_t"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("login past the caller's own deadline = %v; want its deadline error", err)
	}
}

// TestCacheOff: a TTL of 0 vouches for nothing.
func TestCacheOff(t *testing.T) {
	down := false
	up := &fakeAuth{authenticate: func(ctx context.Context, uid, _ string) (Device, error) {
		if down {
			return Device{}, ErrUnreachable
		}
		return Device{UID: uid, Status: StatusActive}, nil
	}}
	c := NewCache(up, 0)
	c.Log = slog.New(slog.DiscardHandler)
	if _, err := c.Authenticate(context.Background(), "dev1", "cst_t"); err != nil {
		t.Fatal(err)
	}
	down = true
	if _, err := c.Authenticate(context.Background(), "dev1", "cst_t"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("login with the cache off and the registry down = %v, want ErrUnreachable", err)
	}
}
