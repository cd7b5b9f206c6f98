package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// authServer serves a fresh registry holding an active "dev1", an inactive
// "dev2" and a revoked "dev3", and returns their tokens.
func authServer(t *testing.T) (*Registry, *httptest.Server, map[string]string) {
	t.Helper()
	r, _ := openTest(t)
	ctx := context.Background()
	tokens := map[string]string{}
	for _, uid := range []string{"dev1", "dev2", "dev3"} {
		tokens[uid] = mustAdd(t, r, "acme/a", uid)
	}
	if _, err := r.Deactivate(ctx, "dev2"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revoke(ctx, "dev3"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(r, OperatorAuth(testOperator)))
	t.Cleanup(srv.Close)
	return r, srv, tokens
}

func TestAuthHandler(t *testing.T) {
	_, srv, tok := authServer(t)
	body := func(uid, token string) string {
		return `{"device_uid":"` + uid + `","token":"` + token + `"}`
	}
	tests := []struct {
		name, method, body string
		noAuth             bool
		want               int
		wantBody           string
	}{
		{"active", "POST", body("dev1", tok["dev1"]), false, 200, `"device_uid":"dev1","namespace":"acme/a","status":"active"`},
		{"wrong token", "POST", body("dev1", tok["dev2"]), false, 401, `{"error":"bad device uid or token"}`},
		{"unknown device", "POST", body("ghost", tok["dev1"]), false, 401, `{"error":"bad device uid or token"}`},
		{"empty", "POST", `{}`, false, 401, `{"error":"bad device uid or token"}`},
		{"inactive", "POST", body("dev2", tok["dev2"]), false, 403, `{"error":"device is inactive"}`},
		{"inactive, wrong token", "POST", body("dev2", tok["dev1"]), false, 401, `bad device uid or token`},
		{"revoked", "POST", body("dev3", tok["dev3"]), false, 403, `{"error":"device is revoked"}`},
		{"revoked, wrong token", "POST", body("dev3", "cst_x"), false, 401, `bad device uid or token`},
		{"no operator token", "POST", body("dev1", tok["dev1"]), true, 401, `operator bearer token required`},
		{"unknown field", "POST", `{"device_uid":"dev1","token":"t","x":1}`, false, 400, `unknown field`},
		{"bad JSON", "POST", `{"device_uid":`, false, 400, `bad request body`},
		{"GET", "GET", ``, false, 405, `use POST`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+"/v1/auth", strings.NewReader(tt.body))
			if !tt.noAuth {
				req.Header.Set("Authorization", "Bearer "+testOperator)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("%s /v1/auth = %d %s, want %d containing %s", tt.method, resp.StatusCode, b, tt.want, tt.wantBody)
			}
			if strings.Contains(string(b), "cst_") {
				t.Errorf("answer holds a token: %s", b)
			}
		})
	}
}

func TestClientAuthenticate(t *testing.T) {
	ctx := context.Background()
	_, srv, tok := authServer(t)
	c := &Client{BaseURL: srv.URL, Token: testOperator, HTTP: srv.Client()}

	d, err := c.Authenticate(ctx, "dev1", tok["dev1"])
	if err != nil || d.UID != "dev1" || d.Namespace != "acme/a" || d.Status != StatusActive || d.CreatedAt.IsZero() {
		t.Fatalf("Authenticate(dev1) = %+v, %v", d, err)
	}

	// A server answering 500 for everything, and one that never answers.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusInternalServerError, "internal error")
	}))
	defer broken.Close()
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	defer slow.Close()
	defer close(hang)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	tests := []struct {
		name       string
		client     *Client
		uid, token string
		is         error
		isNot      []error
	}{
		{"wrong token", c, "dev1", tok["dev2"], ErrBadToken, []error{ErrUnreachable}},
		{"unknown device", c, "ghost", tok["dev1"], ErrBadToken, nil},
		{"inactive", c, "dev2", tok["dev2"], ErrInactive, []error{ErrRevoked, ErrBadToken}},
		{"revoked", c, "dev3", tok["dev3"], ErrRevoked, []error{ErrInactive, ErrBadToken}},
		{"operator token refused", &Client{BaseURL: srv.URL, Token: "cso_wrong", HTTP: srv.Client()}, "dev1", tok["dev1"],
			nil, []error{ErrBadToken, ErrUnreachable, ErrInactive, ErrRevoked}},
		{"server down", &Client{BaseURL: down.URL}, "dev1", tok["dev1"], ErrUnreachable, []error{ErrBadToken}},
		{"5xx", &Client{BaseURL: broken.URL}, "dev1", tok["dev1"], ErrUnreachable, []error{ErrBadToken}},
		{"timeout", &Client{BaseURL: slow.URL, HTTP: &http.Client{Timeout: 50 * time.Millisecond}}, "dev1", tok["dev1"], ErrUnreachable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.client.Authenticate(ctx, tt.uid, tt.token)
			if err == nil {
				t.Fatalf("Authenticate = %+v, want an error", d)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not match %v", err, tt.is)
			}
			for _, not := range tt.isNot {
				if errors.Is(err, not) {
					t.Errorf("error %v matches %v", err, not)
				}
			}
			if !strings.Contains(err.Error(), tt.uid) || strings.Contains(err.Error(), tt.token) {
				t.Errorf("error %q should name the device and not hold the token", err)
			}
		})
	}
}

// An internal error on /v1/auth is logged with the device, never the token.
func TestAuthHandlerLogsNoToken(t *testing.T) {
	r, srv, tok := authServer(t)
	var logged bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	defer slog.SetDefault(prev)
	r.Close() // every query now fails

	c := &Client{BaseURL: srv.URL, Token: testOperator, HTTP: srv.Client()}
	_, err := c.Authenticate(context.Background(), "dev1", tok["dev1"])
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Authenticate with a broken database = %v, want ErrUnreachable (500)", err)
	}
	if !strings.Contains(logged.String(), "dev1") {
		t.Errorf("log lacks the device: %q", logged.String())
	}
	if strings.Contains(logged.String(), tok["dev1"]) || strings.Contains(logged.String(), "cst_") {
		t.Errorf("log holds the token: %q", logged.String())
	}
}
