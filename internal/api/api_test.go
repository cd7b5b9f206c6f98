package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/event"
	"cissan/internal/local"
)

func TestErrorsAreJSON(t *testing.T) {
	n, err := local.Start(context.Background(), local.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Hubs: 1,
		BlockInterval: 100 * time.Millisecond, Limits: event.DefaultLimits(), Analyzers: analyze.Config{Range: analyze.DefaultRangeRules()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cases := []struct {
		path   string
		token  bool
		status int
		msg    string
	}{
		{"/v1/events/x", false, 401, "bearer token required"},
		{"/v1/events/x/proof", false, 401, "bearer token required"},
		{"/v1/events?device=x", false, 401, "bearer token required"},
		{"/v1/events/nope", true, 404, `no event with uid "nope"`},
		{"/v1/events/nope/proof", true, 404, `no event with uid "nope"`},
		{"/v1/blocks/0", false, 404, "no block at height 0"},
		{"/v1/blocks/minus", false, 400, "height must be a non-negative integer"},
		{"/v1/blocks?limit=0", false, 400, "limit must be an integer in 1..100"},
		{"/v1/events?from=yesterday", true, 400, "from: want Unix milliseconds or an RFC 3339 time"},
		{"/v1/events?cursor=zz", true, 400, "cursor"},
		{"/v1/events?limit=5000", true, 400, "limit must be an integer in 1..1000"},
		{"/v1/events?device_uid=x", true, 400, `unknown parameter "device_uid": /v1/events takes device, namespace,`},
		{"/v1/events?device=x&device=y", true, 400, `parameter "device" given 2 times`},
		{"/v1/blocks?height=3", false, 400, `unknown parameter "height": /v1/blocks takes before, limit`},
		{"/v1/blocks?limit=1&limit=2", false, 400, `parameter "limit" given 2 times`},
		{"/v1/status?verbose=1", false, 400, `unknown parameter "verbose": /v1/status takes none`},
		{"/v1/events/nope?fmt=ots", true, 400, `unknown parameter "fmt": /v1/events/nope takes device, version`},
		{"/v1/events/nope/proof?fmt=ots", true, 400, `unknown parameter "fmt": /v1/events/nope/proof takes device, version, format`},
		{"/v1/nothing", false, 404, "no such endpoint"},
		{"/v1/devices", false, 401, "operator bearer token required"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodGet, n.APIURL+c.path, nil)
		if c.token {
			req.Header.Set("Authorization", "Bearer "+n.Token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != c.status || err != nil || !strings.Contains(body.Error, c.msg) {
			t.Errorf("GET %s: %d %q (decode err %v), want %d with %q", c.path, resp.StatusCode, body.Error, err, c.status, c.msg)
		}
	}
	// A wrong token is no token.
	req, _ := http.NewRequest(http.MethodGet, n.APIURL+"/v1/events/x", nil)
	req.Header.Set("Authorization", "Bearer cso_wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: status %d, want 401", resp.StatusCode)
	}
}
