package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestClientRoundTrip(t *testing.T) {
	ctx := context.Background()
	r, srv := newTestServer(t)
	c := &Client{BaseURL: srv.URL + "/", Token: testOperator, HTTP: srv.Client()}

	d, tok, err := c.Add(ctx, "acme/b", "cli-1")
	if err != nil {
		t.Fatal(err)
	}
	if d.UID != "cli-1" || d.Namespace != "acme/b" || d.Status != StatusActive || d.CreatedAt.IsZero() {
		t.Errorf("Add = %+v", d)
	}
	if _, err := r.Authenticate(ctx, "cli-1", tok); err != nil {
		t.Errorf("token from Add refused: %v", err)
	}
	got, err := c.Get(ctx, "cli-1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(d.CreatedAt) || got.UID != d.UID {
		t.Errorf("Get = %+v, want %+v", got, d)
	}

	if d, err = c.Deactivate(ctx, "cli-1"); err != nil || d.Status != StatusInactive {
		t.Errorf("Deactivate = %+v, %v", d, err)
	}
	if d, err = c.Reactivate(ctx, "cli-1"); err != nil || d.Status != StatusActive {
		t.Errorf("Reactivate = %+v, %v", d, err)
	}
	d, tok2, err := c.Rotate(ctx, "cli-1")
	if err != nil || tok2 == tok || !strings.HasPrefix(tok2, "cst_") {
		t.Errorf("Rotate = %+v, %q, %v", d, tok2, err)
	}
	if _, err := r.Authenticate(ctx, "cli-1", tok); !errors.Is(err, ErrBadToken) {
		t.Errorf("old token after rotate: %v", err)
	}
	if d, err = c.Revoke(ctx, "cli-1"); err != nil || d.Status != StatusRevoked {
		t.Errorf("Revoke = %+v, %v", d, err)
	}

	// Page through everything two at a time.
	for i := range 5 {
		if _, _, err := c.Add(ctx, "acme/p", fmt.Sprintf("p-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var uids []string
	f := ListFilter{Namespace: "acme/p", Limit: 2}
	for pages := 1; ; pages++ {
		devs, next, err := c.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			uids = append(uids, d.UID)
		}
		if next == "" {
			if pages != 3 {
				t.Errorf("%d pages, want 3", pages)
			}
			break
		}
		f.After = next
	}
	if got := strings.Join(uids, ","); got != "p-0,p-1,p-2,p-3,p-4" {
		t.Errorf("listed %s", got)
	}
	devs, _, err := c.List(ctx, ListFilter{Status: StatusRevoked})
	if err != nil || len(devs) != 2 {
		t.Errorf("revoked devices = %+v, %v", devs, err)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	_, srv := newTestServer(t)
	c := &Client{BaseURL: srv.URL, Token: testOperator, HTTP: srv.Client()}

	tests := []struct {
		name   string
		call   func(c *Client) error
		status int
		msg    string
		is     error
	}{
		{"duplicate", func(c *Client) error { _, _, err := c.Add(ctx, "acme/a", "dev1"); return err }, 409, "already exists", nil},
		{"invalid", func(c *Client) error { _, _, err := c.Add(ctx, "acme", "x"); return err }, 400, "namespace", ErrInvalid},
		{"unknown", func(c *Client) error { _, err := c.Get(ctx, "ghost"); return err }, 404, "not found", ErrNotFound},
		{"revoked", func(c *Client) error { _, err := c.Reactivate(ctx, "dev3"); return err }, 409, "revoked", nil},
		{"uid needing escape", func(c *Client) error { _, err := c.Get(ctx, "a/b c"); return err }, 404, "not found", ErrNotFound},
		{"no token", func(c *Client) error {
			c.Token = ""
			_, _, err := c.List(ctx, ListFilter{})
			return err
		}, 401, "operator bearer token required", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := *c
			err := tt.call(&cc)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error = %v, want *APIError", err)
			}
			if ae.StatusCode != tt.status || !strings.Contains(ae.Message, tt.msg) {
				t.Errorf("error = %+v, want %d containing %q", ae, tt.status, tt.msg)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tt.status)) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("message %q lacks status or server message", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
		})
	}

	// A server that is not there is a transport error, not an APIError.
	down := &Client{BaseURL: "http://127.0.0.1:1", Token: testOperator, HTTP: &http.Client{}}
	if _, err := down.Get(ctx, "x"); err == nil || errors.As(err, new(*APIError)) {
		t.Errorf("unreachable server: %v", err)
	}
}
