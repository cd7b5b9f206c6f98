package hub

import (
	"log/slog"
	"slices"
	"sync"
	"time"
)

// loginGuard counts failed logins per remote address in fixed windows. An
// address that failed limit times in its window is refused until the
// window ends, without asking the registry: a client that tries tokens as
// fast as it can costs one map lookup per attempt. And the log gets one
// line for the first failure of each address's window and one summing up
// the rest when it ends, not a line per attempt.
//
// There is no lockout per username: anyone could then lock a device out
// by failing logins in its name. Tokens are 256 random bits, so guessing
// one is hopeless; what the throttle protects is the hub's and the
// registry's time, and the log.
type loginGuard struct {
	limit  int
	window time.Duration
	log    *slog.Logger

	mu    sync.Mutex
	addrs map[string]*failures
}

type failures struct {
	start time.Time
	n     int
	users []string // the first few usernames tried, for the summary
}

// maxAddrs bounds the addresses a guard remembers; past it, a sweep drops
// the windows that ended, and a new address is not counted until then.
const maxAddrs = 100_000

func newLoginGuard(limit int, window time.Duration, log *slog.Logger) *loginGuard {
	return &loginGuard{limit: limit, window: window, log: log, addrs: map[string]*failures{}}
}

// throttled reports whether addr is refused for now.
func (g *loginGuard) throttled(addr string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.current(addr, now)
	return f != nil && f.n >= g.limit
}

// failed counts a failed login by user from addr, and reports whether it
// is the first of addr's window: the one the caller logs in full.
func (g *loginGuard) failed(addr, user string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.current(addr, now)
	if f == nil {
		if len(g.addrs) >= maxAddrs {
			g.sweepLocked(now)
			if len(g.addrs) >= maxAddrs {
				return false
			}
		}
		f = &failures{start: now}
		g.addrs[addr] = f
	}
	f.n++
	if len(f.users) < 5 && !slices.Contains(f.users, user) {
		f.users = append(f.users, user)
	}
	if f.n == g.limit {
		g.log.Warn("device logins throttled: too many failures from one address", "remote", addr, "failures", f.n, "for", g.window-now.Sub(f.start))
	}
	return f.n == 1
}

// current returns addr's window, after closing it (and logging its
// summary) if it has ended; callers hold g.mu.
func (g *loginGuard) current(addr string, now time.Time) *failures {
	f := g.addrs[addr]
	if f != nil && now.Sub(f.start) >= g.window {
		g.summary(addr, f)
		delete(g.addrs, addr)
		return nil
	}
	return f
}

// sweep closes every window that has ended; the hub calls it once a window.
func (g *loginGuard) sweep(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweepLocked(now)
}

func (g *loginGuard) sweepLocked(now time.Time) {
	for addr, f := range g.addrs {
		if now.Sub(f.start) >= g.window {
			g.summary(addr, f)
			delete(g.addrs, addr)
		}
	}
}

// summary logs the failures of a window beyond the first, which was logged
// when it came.
func (g *loginGuard) summary(addr string, f *failures) {
	if f.n > 1 {
		g.log.Info("device logins refused", "remote", addr, "failures", f.n, "within", g.window, "usernames", f.users)
	}
}
