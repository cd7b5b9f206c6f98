package access

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestToken(t *testing.T) {
	for _, c := range []struct {
		name, header, cookie, want string
	}{
		{"bearer", "Bearer abc", "", "abc"},
		{"bearer case", "bearer  abc ", "", "abc"},
		{"cookie", "", "xyz", "xyz"},
		{"header wins over cookie", "Bearer abc", "xyz", "abc"},
		// A malformed Authorization header is not silently replaced by the
		// cookie: the client said something, and it was wrong.
		{"basic auth", "Basic abc", "xyz", ""},
		{"none", "", "", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		if c.cookie != "" {
			r.AddCookie(&http.Cookie{Name: CookieName, Value: c.cookie})
		}
		if got := Token(r); got != c.want {
			t.Errorf("%s: Token = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestScope(t *testing.T) {
	op := Access{All: true}
	ro := Access{Namespaces: []string{"a/b"}}
	if op.Scope() != nil || !op.Allows("x/y") || !op.Granted() {
		t.Errorf("operator: scope %v, allows other namespaces %v", op.Scope(), op.Allows("x/y"))
	}
	if !slices.Equal(ro.Scope(), []string{"a/b"}) || ro.Allows("x/y") || !ro.Allows("a/b") {
		t.Errorf("read token: scope %v", ro.Scope())
	}
	// Public access must scope a search to nothing, not to everything.
	if s := Public.Scope(); s == nil || len(s) != 0 || Public.Granted() || Public.Allows("a/b") {
		t.Errorf("public: scope %#v, granted %v", s, Public.Granted())
	}
}

func TestOf(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	calls := 0
	resolve := func(*http.Request, string) Access { calls++; return Access{All: true} }
	if a := Of(r, resolve); a.Granted() || calls != 0 {
		t.Errorf("no token: %+v after %d resolver calls, want public without asking", a, calls)
	}
	r.Header.Set("Authorization", "Bearer t")
	if a := Of(r, nil); a.Granted() {
		t.Errorf("nil resolver granted %+v", a)
	}
	if a := Of(r, resolve); !a.All {
		t.Errorf("resolver's answer not returned: %+v", a)
	}
}
