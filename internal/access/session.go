package access

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Session defaults: a sign-in lasts as long as its cookie, and a node keeps
// a bounded number of them.
const (
	SessionTTL  = 12 * time.Hour
	MaxSessions = 10_000
)

// Sessions keeps the explorer's sign-ins on the server. The browser holds
// only a random session id (32 bytes from crypto/rand) in the login cookie;
// the token it stands for stays here, so signing out ends the session for
// good (a copy of the cookie is worth nothing after), and every request
// resolves the token again, so a revoked read token ends its sessions at
// once (or within the resolver's cache, 30 s on nodes whose registry runs
// elsewhere). Sessions live in memory: a restart signs everyone out.
//
// It is safe for concurrent use.
type Sessions struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]session // by SHA-256 of the id
}

type session struct {
	token   string
	expires time.Time
}

// NewSessions keeps at most max sessions (MaxSessions if 0), each ttl
// after sign-in (SessionTTL if 0), reading the time from now (time.Now
// if nil).
func NewSessions(ttl time.Duration, max int, now func() time.Time) *Sessions {
	if ttl <= 0 {
		ttl = SessionTTL
	}
	if max <= 0 {
		max = MaxSessions
	}
	if now == nil {
		now = time.Now
	}
	return &Sessions{ttl: ttl, max: max, now: now, m: map[[sha256.Size]byte]session{}}
}

// TTL is how long a session lasts; the cookie's Max-Age.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// Create starts a session for token and returns its id. When full, it
// drops expired sessions, then the oldest.
func (s *Sessions) Create(token string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new session: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		var oldest [sha256.Size]byte
		var first time.Time
		for k, v := range s.m {
			if !now.Before(v.expires) {
				delete(s.m, k)
			} else if first.IsZero() || v.expires.Before(first) {
				oldest, first = k, v.expires
			}
		}
		if len(s.m) >= s.max {
			delete(s.m, oldest)
		}
	}
	s.m[sha256.Sum256([]byte(id))] = session{token: token, expires: now.Add(s.ttl)}
	return id, nil
}

// Delete ends the session id, if it exists.
func (s *Sessions) Delete(id string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(id)))
	s.mu.Unlock()
}

// Len returns the number of sessions kept, expired ones included until
// they are next looked at.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// token returns the token of a live session.
func (s *Sessions) token(id string) (string, bool) {
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok {
		return "", false
	}
	if !s.now().Before(v.expires) {
		delete(s.m, k)
		return "", false
	}
	return v.token, true
}

// Resolver wraps resolve so that a request signed in by cookie is
// resolved with its session's token; a bearer token is resolved as it is.
// An unknown or expired session reads only what is public, and a session
// whose token grants nothing any more (revoked, or the registry could not
// say) is ended: failing closed, the visitor signs in again. Wrapping
// twice with the same Sessions changes nothing.
func (s *Sessions) Resolver(resolve Resolver) Resolver {
	return func(r *http.Request, tok string) Access {
		if resolve == nil {
			return Public
		}
		if r.Header.Get("Authorization") != "" {
			return resolve(r, tok)
		}
		c, err := r.Cookie(CookieName)
		if err != nil || c.Value != tok {
			return resolve(r, tok) // a token given otherwise, e.g. at login
		}
		real, ok := s.token(tok)
		if !ok {
			return Public
		}
		a := resolve(r, real)
		if !a.Granted() {
			s.Delete(tok)
		}
		return a
	}
}
