package registry

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testOperator = "cso_test-operator-token"

// newTestServer serves a fresh registry holding an active device "dev1", an
// inactive "dev2" and a revoked "dev3", all in acme/a.
func newTestServer(t *testing.T) (*Registry, *httptest.Server) {
	t.Helper()
	r, _ := openTest(t)
	ctx := context.Background()
	for _, uid := range []string{"dev1", "dev2", "dev3"} {
		mustAdd(t, r, "acme/a", uid)
	}
	if _, err := r.Deactivate(ctx, "dev2"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revoke(ctx, "dev3"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(r, OperatorAuth(testOperator)))
	t.Cleanup(srv.Close)
	return r, srv
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		noAuth                   bool
		want                     int
		wantBody                 string // part of the answer
	}{
		{"add", "POST", "/v1/devices", `{"namespace":"acme/b","device_uid":"new"}`, false, 201, `"token":"cst_`},
		{"add echoes device", "POST", "/v1/devices", `{"namespace":"acme/b","device_uid":"new"}`, false, 201, `"device_uid":"new","namespace":"acme/b","status":"active"`},
		{"add duplicate", "POST", "/v1/devices", `{"namespace":"acme/a","device_uid":"dev1"}`, false, 409, `already exists`},
		{"add bad uid", "POST", "/v1/devices", `{"namespace":"acme/a","device_uid":"a b"}`, false, 400, `device_uid: may hold only`},
		{"add bad namespace", "POST", "/v1/devices", `{"namespace":"acme","device_uid":"x"}`, false, 400, `namespace: must be org/group`},
		{"add missing uid", "POST", "/v1/devices", `{"namespace":"acme/a"}`, false, 400, `device_uid: must not be empty`},
		{"add unknown field", "POST", "/v1/devices", `{"namespace":"acme/a","device_uid":"x","token":"t"}`, false, 400, `unknown field \"token\"`},
		{"add bad JSON", "POST", "/v1/devices", `{"namespace":`, false, 400, `bad request body`},
		{"add wrong type", "POST", "/v1/devices", `{"namespace":1,"device_uid":"x"}`, false, 400, `bad request body`},
		{"add two objects", "POST", "/v1/devices", `{"namespace":"acme/a","device_uid":"x"}{}`, false, 400, `single JSON object`},
		{"add empty body", "POST", "/v1/devices", ``, false, 400, `must be a JSON object`},
		{"add huge body", "POST", "/v1/devices", `{"namespace":"` + strings.Repeat("a", 70<<10) + `"}`, false, 413, `exceeds 65536 bytes`},
		{"add without token", "POST", "/v1/devices", `{"namespace":"acme/b","device_uid":"new"}`, true, 401, `operator bearer token required`},

		{"list", "GET", "/v1/devices", ``, false, 200, `"device_uid":"dev3"`},
		{"list last page", "GET", "/v1/devices", ``, false, 200, `"next":""`},
		{"list page", "GET", "/v1/devices?limit=2", ``, false, 200, `"next":"dev2"`},
		{"list after", "GET", "/v1/devices?after=dev2&limit=2", ``, false, 200, `"next":""`},
		{"list empty", "GET", "/v1/devices?namespace=none/x", ``, false, 200, `{"devices":[],"next":""}`},
		{"list status", "GET", "/v1/devices?status=revoked", ``, false, 200, `"status":"revoked"`},
		{"list bad status", "GET", "/v1/devices?status=zombie", ``, false, 400, `status must be`},
		{"list bad limit", "GET", "/v1/devices?limit=abc", ``, false, 400, `limit must be`},
		{"list limit too big", "GET", "/v1/devices?limit=1001", ``, false, 400, `limit must be`},
		{"list without token", "GET", "/v1/devices", ``, true, 401, `operator bearer token required`},

		{"get", "GET", "/v1/devices/dev1", ``, false, 200, `"device_uid":"dev1"`},
		{"get hides token", "GET", "/v1/devices/dev1", ``, false, 200, `"token_rotated_at"`},
		{"get unknown", "GET", "/v1/devices/ghost", ``, false, 404, `device \"ghost\": device not found`},
		{"get without token", "GET", "/v1/devices/dev1", ``, true, 401, `operator bearer token required`},

		{"deactivate", "POST", "/v1/devices/dev1/deactivate", ``, false, 200, `"status":"inactive"`},
		{"deactivate with {}", "POST", "/v1/devices/dev1/deactivate", `{}`, false, 200, `"status":"inactive"`},
		{"deactivate with body", "POST", "/v1/devices/dev1/deactivate", `{"x":1}`, false, 400, `takes no request body`},
		{"deactivate unknown", "POST", "/v1/devices/ghost/deactivate", ``, false, 404, `not found`},
		{"deactivate revoked", "POST", "/v1/devices/dev3/deactivate", ``, false, 409, `revoked`},
		{"deactivate without token", "POST", "/v1/devices/dev1/deactivate", ``, true, 401, `operator bearer token required`},

		{"reactivate", "POST", "/v1/devices/dev2/reactivate", ``, false, 200, `"status":"active"`},
		{"reactivate unknown", "POST", "/v1/devices/ghost/reactivate", ``, false, 404, `not found`},
		{"reactivate revoked", "POST", "/v1/devices/dev3/reactivate", ``, false, 409, `device is revoked`},
		{"reactivate without token", "POST", "/v1/devices/dev2/reactivate", ``, true, 401, `operator bearer token required`},

		{"revoke", "POST", "/v1/devices/dev1/revoke", ``, false, 200, `"status":"revoked"`},
		{"revoke unknown", "POST", "/v1/devices/ghost/revoke", ``, false, 404, `not found`},
		{"revoke revoked", "POST", "/v1/devices/dev3/revoke", ``, false, 409, `device is revoked`},
		{"revoke without token", "POST", "/v1/devices/dev1/revoke", ``, true, 401, `operator bearer token required`},

		{"rotate", "POST", "/v1/devices/dev1/rotate", ``, false, 200, `"token":"cst_`},
		{"rotate unknown", "POST", "/v1/devices/ghost/rotate", ``, false, 404, `not found`},
		{"rotate revoked", "POST", "/v1/devices/dev3/rotate", ``, false, 409, `device is revoked`},
		{"rotate without token", "POST", "/v1/devices/dev1/rotate", ``, true, 401, `operator bearer token required`},

		{"unknown action", "POST", "/v1/devices/dev1/explode", ``, false, 404, `no such route`},
		{"unknown path", "GET", "/v2/things", ``, false, 404, `no such route`},
		{"unknown path without token", "GET", "/v2/things", ``, true, 401, `operator bearer token required`},
		{"wrong method on action", "GET", "/v1/devices/dev1/revoke", ``, false, 405, `use POST`},
		{"wrong method on device", "DELETE", "/v1/devices/dev1", ``, false, 405, `use GET`},
		{"wrong method on devices", "PUT", "/v1/devices", ``, false, 405, `use GET, POST`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each case has its own registry and server
			_, srv := newTestServer(t)
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.noAuth {
				req.Header.Set("Authorization", "Bearer "+testOperator)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Errorf("status = %d, want %d; body %s", resp.StatusCode, tt.want, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !json.Valid(b) {
				t.Errorf("answer is not JSON: %s", b)
			}
			if !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("answer %s does not contain %s", b, tt.wantBody)
			}
			if tt.want >= 400 {
				var eb map[string]any
				json.Unmarshal(b, &eb)
				if len(eb) != 1 || eb["error"] == "" {
					t.Errorf("error answer %s is not {\"error\":...}", b)
				}
			}
		})
	}
}

// TestHandlerWrongOperatorToken checks that a wrong bearer token is as good
// as none, and that an unset authorize admits nobody.
func TestHandlerWrongOperatorToken(t *testing.T) {
	r, srv := newTestServer(t)
	for name, h := range map[string]http.Handler{
		"wrong token":   srv.Config.Handler,
		"nil authorize": NewHandler(r, nil),
	} {
		req := httptest.NewRequest("GET", "/v1/devices", nil)
		req.Header.Set("Authorization", "Bearer cso_wrong")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Errorf("%s: status %d, want 401", name, rec.Code)
		}
		if rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate header", name)
		}
	}
}

// TestHandlerChangesTakeEffect checks through the API that a rotate's token
// is the one that works, and that a revoke bars the device.
func TestHandlerChangesTakeEffect(t *testing.T) {
	ctx := context.Background()
	r, srv := newTestServer(t)
	call := func(method, path string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+testOperator)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	tok, _ := call("POST", "/v1/devices/dev1/rotate")["token"].(string)
	if _, err := r.Authenticate(ctx, "dev1", tok); err != nil {
		t.Fatalf("rotated token refused: %v", err)
	}
	call("POST", "/v1/devices/dev1/revoke")
	if _, err := r.Authenticate(ctx, "dev1", tok); err == nil {
		t.Fatal("revoked device authenticated")
	}
}
