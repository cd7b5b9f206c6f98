package explorer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"cissan/internal/api"
	"cissan/internal/explorer"
)

// secrets are strings of the test events that no anonymous visitor may
// see: uids, device ids, namespaces and item contents.
var secrets = []string{"evt-secret-", "dev-secret-", "orgx/grpsecret", "orgy/other", "marker-payload-text", "sekrit_key"}

// fixture starts a network and logs events of two namespaces, one of them
// tagged by the range analyzer.
func fixture(t *testing.T, hubs int) *testNet {
	t.Helper()
	tn := startNet(t, hubs)
	a := tn.device("dev-secret-a", "orgx/grpsecret")
	b := tn.device("dev-secret-b", "orgy/other")
	now := time.Now().Add(-time.Minute)
	for i := range 12 {
		temp := 20.0 + float64(i%5)
		if i == 7 {
			temp = 150 // out of range: tagged
		}
		publish(t, a, "evt-secret-a"+itoa(i), now.Add(time.Duration(i)*time.Second), "temperature", temp, "sekrit_key", "marker-payload-text")
	}
	publish(t, b, "evt-secret-b0", now, "temperature", 3.5)
	tn.waitFinal("evt-secret-a11")
	tn.waitFinal("evt-secret-b0")
	// Search reads the index, which follows finality by a moment.
	led := tn.Master.Ledger()
	if err := led.WaitIndexed(ctxTimeout(t, 15*time.Second), led.Height()); err != nil {
		t.Fatalf("index at %d of %d blocks: %v", led.IndexedHeight(), led.Height(), err)
	}
	return tn
}

func itoa(i int) string { return fmt.Sprintf("%02d", i) }

func TestAnonymousCrawlShowsNoEventContent(t *testing.T) {
	tn := fixture(t, 2)
	pages := crawl(t, tn.APIURL, 400, func(p string) (int, string) { return tn.get(p, "") })
	for _, must := range []string{"/", "/blocks", "/verify", "/events", "/v1/network"} {
		if _, ok := pages[must]; !ok {
			t.Errorf("crawl did not reach %s", must)
		}
	}
	blockPages := 0
	for p := range pages {
		if strings.HasPrefix(p, "/blocks/") {
			blockPages++
		}
	}
	if h := int(tn.Master.Ledger().Height()); blockPages != h {
		t.Errorf("crawl reached %d block pages, want every one of the chain's %d blocks", blockPages, h)
	}
	assertNoSecrets(t, pages, secrets)
	// Pages reached directly, with no link to them, say nothing either.
	for _, p := range []string{"/events/evt-secret-a01", "/events?device=dev-secret-a", "/devices", "/devices/dev-secret-a"} {
		code, body := tn.get(p, "")
		if code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", p, code)
		}
		// The sign-in form echoes the address the visitor typed, to return
		// there; nothing else may name the event or device.
		body = strings.ReplaceAll(body, html.EscapeString(p), "")
		assertNoSecrets(t, map[string]string{p: body}, secrets)
	}
}

func TestOperatorSeesEverything(t *testing.T) {
	tn := fixture(t, 2)
	code, body := tn.get("/events?namespace=orgx/grpsecret", tn.Token)
	if code != 200 || !strings.Contains(body, "evt-secret-a11") || strings.Contains(body, "evt-secret-b0") {
		t.Fatalf("operator search by namespace: %d\n%s", code, body)
	}
	code, body = tn.get("/events/evt-secret-a07", tn.Token)
	if code != 200 || !strings.Contains(body, "out_of_range") || !strings.Contains(body, "marker-payload-text") ||
		!strings.Contains(body, `href="/v1/events/evt-secret-a07/proof?device=dev-secret-a&amp;version=1"`) || strings.Contains(body, "format=ots") || !strings.Contains(body, "anchoring is off") {
		t.Fatalf("operator event page: %d\n%s", code, body)
	}
	code, body = tn.get("/devices/dev-secret-a", tn.Token)
	if code != 200 || strings.Count(body, `class="anomaly"`) != 1 || !strings.Contains(body, "<path d=\"M") {
		t.Fatalf("device page: %d, want a chart with one anomaly marked\n%s", code, body)
	}
	code, body = tn.get("/devices", tn.Token)
	if code != 200 || !strings.Contains(body, "dev-secret-b") {
		t.Fatalf("devices page: %d", code)
	}
	// Search pages: 12 events of a device, 5 a page.
	code, body = tn.get("/events?device=dev-secret-a&q=marker", tn.Token)
	if code != 200 || !strings.Contains(body, "evt-secret-a11") {
		t.Fatalf("full-text search: %d", code)
	}
}

func TestReadTokenSeesOnlyItsNamespaces(t *testing.T) {
	tn := fixture(t, 2)
	nt, err := tn.Registry.CreateReadToken(t.Context(), "auditor", []string{"orgy/other"})
	if err != nil {
		t.Fatal(err)
	}
	tok := nt.Token

	// API: search is limited to the token's namespace, whatever the filter.
	for _, q := range []string{"/v1/events", "/v1/events?namespace=orgx/grpsecret", "/v1/events?device=dev-secret-a"} {
		code, body := tn.get(q, tok)
		var res struct {
			Events []struct{ UID, Namespace string }
		}
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("GET %s: %d %s", q, code, body)
		}
		for _, e := range res.Events {
			if e.Namespace != "orgy/other" {
				t.Errorf("GET %s with a token for orgy/other returned %s of %s", q, e.UID, e.Namespace)
			}
		}
	}
	for p, want := range map[string]int{
		"/v1/events/evt-secret-b0":        200,
		"/v1/events/evt-secret-b0/proof":  200,
		"/v1/events/evt-secret-a01":       404,
		"/v1/events/evt-secret-a01/proof": 404,
		"/v1/events/no-such-event":        404,
		"/v1/analyzers":                   403,
		"/v1/devices":                     401,
		"/v1/tokens":                      401,
	} {
		if code, body := tn.get(p, tok); code != want {
			t.Errorf("GET %s with a read token: %d, want %d (%s)", p, code, want, body)
		}
	}
	// Pages.
	code, body := tn.get("/events", tok)
	if code != 200 || !strings.Contains(body, "evt-secret-b0") || strings.Contains(body, "evt-secret-a") {
		t.Fatalf("search page with a read token: %d\n%s", code, body)
	}
	if code, _ := tn.get("/events/evt-secret-a01", tok); code != 404 {
		t.Errorf("event page of another namespace: %d, want 404", code)
	}
	if code, _ := tn.get("/devices", tok); code != 403 {
		t.Errorf("devices page with a read token: %d, want 403", code)
	}
	loc, _ := tn.locate("evt-secret-a01")
	code, body = tn.get(fmt.Sprintf("/blocks/%d", loc.Height), tok)
	if code != 200 || strings.Contains(body, "evt-secret-a") || strings.Contains(body, "dev-secret-a") {
		t.Errorf("block page with a read token shows another namespace's entries: %d", code)
	}
	// Revoked: nothing.
	if _, err := tn.Registry.RevokeReadToken(t.Context(), nt.ID); err != nil {
		t.Fatal(err)
	}
	if code, _ := tn.get("/v1/events/evt-secret-b0", tok); code != 401 {
		t.Errorf("revoked token: %d, want 401", code)
	}
}

func TestLoginCookie(t *testing.T) {
	tn := startNet(t, 1)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(tn.APIURL+"/login", map[string][]string{"token": {tn.Token}, "next": {"//evil.example/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q, want 303 to / (never off-site)", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Value == "" || strings.Contains(ck[0].Value, tn.Token) {
		t.Fatalf("login cookie: %+v", ck)
	}
	resp, err = c.PostForm(tn.APIURL+"/login", map[string][]string{"token": {"cso_wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	// A form posted from another site signs nobody in.
	req, _ := http.NewRequest(http.MethodPost, tn.APIURL+"/login", strings.NewReader("token="+tn.Token))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("cross-site login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	// The cookie reads; it never changes anything.
	req, _ = http.NewRequest(http.MethodPost, tn.APIURL+"/v1/analyzers", strings.NewReader(`{"range":[]}`))
	req.AddCookie(ck[0])
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /v1/analyzers with the login cookie: %d, want 401", resp.StatusCode)
	}
}

func TestSearchPagesThroughEveryEvent(t *testing.T) {
	tn := fixture(t, 1)
	seen := map[string]bool{}
	next := "/events?device=dev-secret-a&limit=5"
	pages := 0
	for next != "" {
		code, body := tn.get(next, tn.Token)
		if code != 200 {
			t.Fatalf("GET %s: %d", next, code)
		}
		pages++
		for _, m := range regexp.MustCompile(`href="/events/(evt-[^"]+)"`).FindAllStringSubmatch(body, -1) {
			if seen[m[1]] {
				t.Errorf("%s shown on two pages", m[1])
			}
			seen[m[1]] = true
		}
		next = ""
		if m := regexp.MustCompile(`href="(/events\?[^"]*cursor=[^"]*)" id="next-page"`).FindStringSubmatch(body); m != nil {
			next = html.UnescapeString(m[1])
		}
	}
	if pages != 3 || len(seen) != 12 {
		t.Fatalf("%d pages showed %d events, want 3 pages of the device's 12", pages, len(seen))
	}
	// A time range in the form's format (UTC) narrows the search.
	code, body := tn.get("/events?device=dev-secret-a&from=2000-01-01T00:00&to=2000-01-02T00:00", tn.Token)
	if code != 200 || strings.Contains(body, "evt-secret-a") {
		t.Fatalf("search in a time range without events: %d", code)
	}
	if code, _ := tn.get("/events?from=yesterday", tn.Token); code != 400 {
		t.Fatalf("bad time: %d, want 400", code)
	}
}

func TestLiveStreamSendsSamplesAndEndsOnClose(t *testing.T) {
	tn := startNet(t, 1)
	resp, err := http.Get(tn.APIURL + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	samples := 0
	for samples < 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			var msg struct {
				Snapshot struct{ Height uint64 }
				Series   []json.RawMessage
			}
			if err := json.Unmarshal([]byte(line[6:]), &msg); err != nil {
				t.Fatalf("sample is not JSON: %v: %s", err, line)
			}
			samples++
		}
	}
	// With a dashboard still connected, the network closes promptly.
	start := time.Now()
	if err := tn.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Close took %v with a live stream open", d)
	}
}

// TestAnchorShown renders anchoring as the anchoring service reports it,
// through the hooks a node wires (here fakes, over a real chain).
func TestAnchorShown(t *testing.T) {
	tn := fixture(t, 1)
	led := tn.Master.Ledger()
	anchored := uint64(0)
	btcTime := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ex, err := explorer.New(explorer.Config{
		Ledger: led, Access: tn.Registry.Resolver(tn.Token),
		Anchor: func(h uint64) *api.AnchorJSON {
			return &api.AnchorJSON{State: "confirmed", AnchoredHeight: &anchored, TxID: "ab12cd34", BitcoinHeight: 812345, BitcoinTime: &btcTime, Confirmations: 6}
		},
		AnchorStatus: func(context.Context) any {
			return map[string]any{"address": "bcrt1qexampleaddress", "balance_sat": int64(150_000_000), "anchors": 3,
				"last_anchor": map[string]any{"state": "confirmed", "anchored_height": 0, "txid": "ab12cd34"}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, token string) string {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		ex.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d", path, rec.Code)
		}
		return rec.Body.String()
	}
	body := get("/", "")
	for _, want := range []string{"bcrt1qexampleaddress", "1.50000000 BTC", "confirmed", `href="/blocks/0"`} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if strings.Contains(body, "Anchoring off") {
		t.Error("dashboard says anchoring is off")
	}
	body = get("/blocks/0", "")
	for _, want := range []string{"ab12cd34", "812345", "2026-11-27 12:00:00 UTC"} {
		if !strings.Contains(body, want) {
			t.Errorf("block page lacks %q", want)
		}
	}
	if body = get("/events/evt-secret-a01", tn.Token); !strings.Contains(body, `href="/v1/events/evt-secret-a01/proof?device=dev-secret-a&amp;version=1&amp;format=ots"`) {
		t.Error("event page has no .ots link while anchoring is on")
	}
}
