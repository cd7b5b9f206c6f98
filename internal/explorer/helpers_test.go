package explorer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"cissan/internal/analyze"
	"cissan/internal/event"
	"cissan/internal/local"
	"cissan/internal/sim"
	"cissan/internal/store"
)

// net is a running one-process network, with its explorer at APIURL.
type testNet struct {
	*local.Network
	t    *testing.T
	logs *syncBuffer
}

func startNet(t *testing.T, hubs int) *testNet {
	t.Helper()
	logs := &syncBuffer{}
	n, err := local.Start(t.Context(), local.Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Hubs: hubs,
		BlockInterval: 200 * time.Millisecond, ResubmitAfter: 2 * time.Second, Limits: event.DefaultLimits(),
		Analyzers: analyze.Config{Range: []analyze.RangeRule{{Key: "temperature", Min: -40, Max: 85}}},
		Log:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatalf("start network: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close network: %v", err)
		}
		if t.Failed() {
			t.Logf("network logs:\n%s", logs.String())
		}
	})
	return &testNet{Network: n, t: t, logs: logs}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// device registers a device and connects it to the first hub.
func (tn *testNet) device(uid, namespace string) *sim.Device {
	tn.t.Helper()
	_, tok, err := tn.Registry.Add(tn.t.Context(), namespace, uid)
	if err != nil {
		tn.t.Fatalf("register %s: %v", uid, err)
	}
	d, err := sim.Dial(tn.t.Context(), tn.MQTTAddrs()[0], uid, namespace, tok)
	if err != nil {
		tn.t.Fatalf("connect %s: %v", uid, err)
	}
	tn.t.Cleanup(func() { _ = d.Close() })
	return d
}

// publish sends one event with the given items and fails the test unless
// the hub acknowledges it.
func publish(t *testing.T, d *sim.Device, uid string, ts time.Time, items ...any) {
	t.Helper()
	var its []map[string]any
	for i := 0; i+1 < len(items); i += 2 {
		its = append(its, map[string]any{"key": items[i], "value": items[i+1]})
	}
	b, err := json.Marshal(map[string]any{"uid": uid, "timestamp": ts.UnixMilli(), "items": its, "namespace": d.Namespace, "device_uid": d.UID})
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Publish(t.Context(), "devices/"+d.UID+"/events", b)
	if err != nil || !r.OK() {
		t.Fatalf("publish %s: %+v, %v", uid, r, err)
	}
}

// locate finds where the master logs the one event of uid.
func (tn *testNet) locate(uid string) (store.Located, error) {
	found, err := tn.Master.Ledger().Find(uid, "", 0)
	if err != nil {
		return store.Located{}, err
	}
	if len(found) != 1 {
		return store.Located{}, fmt.Errorf("uid %q names %d events", uid, len(found))
	}
	return found[0].At, nil
}

// waitFinal waits until the event uid is in a final block.
func (tn *testNet) waitFinal(uid string) {
	tn.t.Helper()
	led := tn.Master.Ledger()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if loc, err := tn.locate(uid); err == nil {
			if ok, _ := led.Final(loc.Height); ok {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tn.t.Fatalf("event %s not final within 15 s", uid)
}

// get fetches path with an optional bearer token and returns status and body.
func (tn *testNet) get(path, token string) (int, string) {
	tn.t.Helper()
	req, err := http.NewRequestWithContext(tn.t.Context(), http.MethodGet, tn.APIURL+path, nil)
	if err != nil {
		tn.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tn.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var hrefRE = regexp.MustCompile(`(?:href|src)="([^"]+)"`)

// crawl visits every same-site link reachable from "/" with fetch, up to
// max pages, and returns each page's body by path. Links into the JSON
// API (/v1/...) and metrics are followed too: they are pages a visitor can
// reach.
func crawl(t *testing.T, base string, max int, fetch func(path string) (int, string)) map[string]string {
	t.Helper()
	seen := map[string]string{}
	queue := []string{"/"}
	for len(queue) > 0 && len(seen) < max {
		p := queue[0]
		queue = queue[1:]
		if _, ok := seen[p]; ok {
			continue
		}
		_, body := fetch(p)
		seen[p] = body
		for _, m := range hrefRE.FindAllStringSubmatch(body, -1) {
			link := strings.ReplaceAll(m[1], "&amp;", "&")
			u, err := url.Parse(link)
			if err != nil || (u.Host != "" && !strings.HasPrefix(link, base)) {
				continue
			}
			next := u.EscapedPath()
			if next == "" || next == "/live" {
				continue
			}
			if u.RawQuery != "" {
				next += "?" + u.RawQuery
			}
			if _, ok := seen[next]; !ok {
				queue = append(queue, next)
			}
		}
	}
	return seen
}

// assertNoSecrets fails for every page that holds one of secrets.
func assertNoSecrets(t *testing.T, pages map[string]string, secrets []string) {
	t.Helper()
	for p, body := range pages {
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("page %s shows %q to a visitor without a token", p, s)
			}
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
