package explorer_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"cissan/internal/access"
	"cissan/internal/explorer"
)

// signIn posts token to /login and returns the session cookie.
func signIn(t *testing.T, base, token string) *http.Cookie {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/login", url.Values{"token": {token}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("sign in: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	return resp.Cookies()[0]
}

// withCookie sends method path with only the cookie as credential.
func withCookie(t *testing.T, base, method, path string, ck *http.Cookie) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, base+path, nil)
	req.AddCookie(ck)
	if method == http.MethodPost {
		req.Header.Set("Origin", base)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSessionsAreServerSide(t *testing.T) {
	tn := fixture(t, 1)
	base := tn.APIURL

	// The cookie is a session id, not the token, and reads what the token reads.
	ck := signIn(t, base, tn.Token)
	if ck.Name != access.CookieName || ck.Value == tn.Token || strings.Contains(ck.Value, tn.Token) || len(ck.Value) < 43 {
		t.Fatalf("cookie %s=%q: want a random session id, not the token", ck.Name, ck.Value)
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Secure || ck.MaxAge != 12*3600 {
		t.Fatalf("cookie attributes: %+v", ck)
	}
	if code, body := withCookie(t, base, http.MethodGet, "/devices", ck); code != 200 || !strings.Contains(body, "dev-secret-a") {
		t.Fatalf("devices page with the session: %d", code)
	}
	// The API honours the session too: the event page's proof link.
	if code, _ := withCookie(t, base, http.MethodGet, "/v1/events/evt-secret-a01/proof", ck); code != 200 {
		t.Fatalf("proof download with the session: %d", code)
	}
	// The token itself in the cookie is worth nothing.
	if code, _ := withCookie(t, base, http.MethodGet, "/v1/events/evt-secret-a01", &http.Cookie{Name: access.CookieName, Value: tn.Token}); code != 401 {
		t.Fatalf("the operator token as cookie: %d, want 401", code)
	}

	// Sign-out ends the session on the server: a copy of the cookie, replayed, reads nothing.
	if code, _ := withCookie(t, base, http.MethodPost, "/logout", ck); code != http.StatusSeeOther {
		t.Fatalf("sign out: %d", code)
	}
	if code, _ := withCookie(t, base, http.MethodGet, "/v1/events/evt-secret-a01", ck); code != 401 {
		t.Fatalf("replayed cookie after sign-out, API: %d, want 401", code)
	}
	if code, body := withCookie(t, base, http.MethodGet, "/devices", ck); code == 200 || strings.Contains(body, "dev-secret-a") {
		t.Fatalf("replayed cookie after sign-out, devices page: %d", code)
	}

	// Revoking the read token behind a session ends the session at once.
	nt, err := tn.Registry.CreateReadToken(t.Context(), "auditor", []string{"orgy/other"})
	if err != nil {
		t.Fatal(err)
	}
	ck = signIn(t, base, nt.Token)
	if code, body := withCookie(t, base, http.MethodGet, "/events/evt-secret-b0", ck); code != 200 || !strings.Contains(body, "dev-secret-b") {
		t.Fatalf("event of the token's namespace with the session: %d", code)
	}
	if _, err := tn.Registry.RevokeReadToken(t.Context(), nt.ID); err != nil {
		t.Fatal(err)
	}
	if code, body := withCookie(t, base, http.MethodGet, "/events/evt-secret-b0", ck); code == 200 || strings.Contains(body, "dev-secret-b") {
		t.Fatalf("event page after the token's revocation: %d", code)
	}
	if code, _ := withCookie(t, base, http.MethodGet, "/v1/events/evt-secret-b0", ck); code != 401 {
		t.Fatalf("API after the token's revocation: %d, want 401", code)
	}
}

// Behind HTTPS the cookie is Secure.
func TestSessionCookieSecure(t *testing.T) {
	tn := startNet(t, 1)
	ex, err := explorer.New(explorer.Config{Ledger: tn.Master.Ledger(), Access: tn.Registry.Resolver(tn.Token), Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "https://node.example/login", strings.NewReader(url.Values{"token": {tn.Token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	ex.ServeHTTP(w, req)
	ck := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || len(ck) != 1 || !ck[0].Secure || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Value == tn.Token {
		t.Fatalf("login behind HTTPS: %d, cookies %+v", w.Code, ck)
	}
}
