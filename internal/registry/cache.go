package registry

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// DefaultCacheTTL is how long a Cache vouches for a login the registry
// accepted, while the registry is unreachable.
const DefaultCacheTTL = time.Hour

// DefaultUpstreamTimeout bounds one question to the registry when the
// caller's context has no deadline (the MQTT broker's login hook has none).
const DefaultUpstreamTimeout = 5 * time.Second

// Authenticator checks a device's login: Registry and Client are both one.
type Authenticator interface {
	Authenticate(ctx context.Context, uid, token string) (Device, error)
}

var (
	_ Authenticator = (*Registry)(nil)
	_ Authenticator = (*Client)(nil)
	_ Authenticator = (*Cache)(nil)
)

// Cache is a hub's view of the registry that keeps device logins working
// through a short registry outage. Every login is asked of the registry
// first; the cache answers only when the registry is unreachable
// (ErrUnreachable), and only for a device whose same token the registry
// accepted within the TTL.
//
// It keeps, per device, SHA-256 of the last token the registry accepted,
// the device and when; never the token itself. A refusal from the registry
// (inactive, revoked, or the cached token now wrong) drops the entry, and so
// does Invalidate, which the hub calls when the registry announces a change
// of the device. A login whose registry answer was already on its way when
// Invalidate ran is not cached, so a change cannot be undone by a racing
// login.
//
// Cache is safe for concurrent use. Set Log and Timeout, if at all, before
// the first call.
type Cache struct {
	// Log records logins answered from the cache (device uid and the
	// registry's error; never a token). Default slog.Default().
	Log *slog.Logger
	// Timeout bounds a question to the registry when the caller's context
	// has no deadline; past it, the registry counts as unreachable.
	// Default DefaultUpstreamTimeout.
	Timeout time.Duration

	upstream Authenticator
	ttl      time.Duration
	now      func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry
	epoch   uint64 // counts Invalidate calls
}

type cacheEntry struct {
	sum    [sha256.Size]byte
	device Device
	at     time.Time // when the registry last accepted this token
}

// NewCache returns a cache in front of upstream (a Client, usually) that
// vouches for a login for ttl after the registry last accepted it; a ttl
// of 0 vouches for nothing, so every login needs the registry.
func NewCache(upstream Authenticator, ttl time.Duration) *Cache {
	return &Cache{upstream: upstream, ttl: ttl, now: time.Now, entries: map[string]cacheEntry{}}
}

// Authenticate asks the registry, and remembers its acceptance. When the
// registry is unreachable, it accepts the login if the registry accepted
// this same token for uid less than the TTL ago, and otherwise returns the
// registry's error (wrapping ErrUnreachable).
func (c *Cache) Authenticate(ctx context.Context, uid, token string) (Device, error) {
	sum := sha256.Sum256([]byte(token))
	c.mu.Lock()
	epoch := c.epoch
	c.mu.Unlock()

	uctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		timeout := c.Timeout
		if timeout <= 0 {
			timeout = DefaultUpstreamTimeout
		}
		var cancel context.CancelFunc
		uctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	d, err := c.upstream.Authenticate(uctx, uid, token)

	if err == nil {
		c.mu.Lock()
		// If a change was announced while we asked, what we were told may
		// predate it: vouch for nothing until the next login.
		if c.epoch == epoch {
			c.entries[uid] = cacheEntry{sum: sum, device: d, at: c.now()}
		}
		c.mu.Unlock()
		return d, nil
	}
	if errors.Is(err, ErrUnreachable) && ctx.Err() == nil {
		if d, age, ok := c.lookup(uid, sum); ok {
			c.log().Warn("registry unreachable; device login accepted from cache",
				"device", uid, "accepted_by_registry_ago", age.Round(time.Second), "err", err)
			return d, nil
		}
		return Device{}, err
	}
	switch {
	case errors.Is(err, ErrInactive), errors.Is(err, ErrRevoked):
		// Only the right token learns these: the cached one is no good.
		c.Invalidate(uid)
	case errors.Is(err, ErrBadToken):
		// Drop the entry if it is this token that is now wrong; a wrong
		// token from someone else says nothing about the cached one, and
		// must not evict it.
		c.mu.Lock()
		if e, ok := c.entries[uid]; ok && subtle.ConstantTimeCompare(e.sum[:], sum[:]) == 1 {
			delete(c.entries, uid)
		}
		c.mu.Unlock()
	}
	return Device{}, err
}

// lookup returns uid's cached device if its token hash is sum and the
// registry accepted it less than the TTL ago; it drops an expired entry.
func (c *Cache) lookup(uid string, sum [sha256.Size]byte) (Device, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[uid]
	if !ok {
		return Device{}, 0, false
	}
	age := c.now().Sub(e.at)
	if age >= c.ttl {
		delete(c.entries, uid)
		return Device{}, 0, false
	}
	if subtle.ConstantTimeCompare(e.sum[:], sum[:]) != 1 {
		return Device{}, 0, false
	}
	return e.device, age, true
}

// Invalidate forgets uid's cached login: the registry changed the device.
func (c *Cache) Invalidate(uid string) {
	c.mu.Lock()
	c.epoch++
	delete(c.entries, uid)
	c.mu.Unlock()
}

func (c *Cache) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}
