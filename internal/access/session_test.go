package access

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSessions(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := NewSessions(time.Hour, 3, func() time.Time { return now })
	live := map[string]bool{"cso_op": true, "csr_a": true}
	resolve := func(_ *http.Request, tok string) Access {
		if live[tok] {
			return Access{All: tok == "cso_op", Namespaces: map[bool][]string{false: {"acme/a"}}[tok == "cso_op"], Label: tok}
		}
		return Public
	}
	wrapped := s.Resolver(s.Resolver(resolve)) // twice changes nothing
	withCookie := func(id string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: CookieName, Value: id})
		return r
	}
	id, err := s.Create("csr_a")
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 43 || id == "csr_a" {
		t.Fatalf("session id %q: want 43 base64url characters of randomness", id)
	}
	if a := Of(withCookie(id), wrapped); a.Label != "csr_a" || !a.Allows("acme/a") {
		t.Fatalf("session: %+v", a)
	}
	// The token itself in the cookie is not a session.
	if a := Of(withCookie("csr_a"), wrapped); a.Granted() {
		t.Fatalf("a token in the cookie: %+v, want public", a)
	}
	// A bearer token still works as before.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer cso_op")
	if a := Of(r, wrapped); !a.All {
		t.Fatalf("bearer: %+v", a)
	}
	// Expiry, on the injected clock.
	now = now.Add(time.Hour - time.Second)
	if a := Of(withCookie(id), wrapped); !a.Granted() {
		t.Fatal("session ended before its TTL")
	}
	now = now.Add(time.Second)
	if a := Of(withCookie(id), wrapped); a.Granted() || s.Len() != 0 {
		t.Fatalf("session after its TTL: %+v, %d kept", a, s.Len())
	}
	// Sign-out.
	id, _ = s.Create("cso_op")
	s.Delete(id)
	if a := Of(withCookie(id), wrapped); a.Granted() {
		t.Fatal("session after Delete still reads")
	}
	// Revocation ends the session.
	id, _ = s.Create("csr_a")
	delete(live, "csr_a")
	if a := Of(withCookie(id), wrapped); a.Granted() || s.Len() != 0 {
		t.Fatalf("session of a revoked token: %+v, %d kept", a, s.Len())
	}
	live["csr_a"] = true
	if a := Of(withCookie(id), wrapped); a.Granted() {
		t.Fatal("an ended session came back")
	}
	// Bounded: the oldest goes first.
	var ids []string
	for range 4 {
		id, _ := s.Create("cso_op")
		ids = append(ids, id)
		now = now.Add(time.Minute)
	}
	if s.Len() != 3 || Of(withCookie(ids[0]), wrapped).Granted() || !Of(withCookie(ids[3]), wrapped).Granted() {
		t.Fatalf("full store: %d kept; oldest must go, newest stay", s.Len())
	}
}
