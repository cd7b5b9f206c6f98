package explorer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// newBrowser starts a headless Chromium for one test, with a fresh
// profile. Without Chromium the test is skipped, except in CI (CI=true),
// where that is a failure: .ci/run installs it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed, and CI=true: install it (apt-get install chromium; .ci/run does)")
		}
		t.Skip("browser test skipped: chromium is not installed (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 768),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })

	// Any script error on any page fails the test.
	var mu sync.Mutex
	var jsErrors []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			msg := e.ExceptionDetails.Text
			if ex := e.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
			mu.Lock()
			jsErrors = append(jsErrors, fmt.Sprintf("%s (%s:%d)", msg, e.ExceptionDetails.URL, e.ExceptionDetails.LineNumber+1))
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range jsErrors {
			t.Errorf("script error in the page: %s", e)
		}
	})
	return ctx
}

// run runs steps in the browser, failing the test on any error.
func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	return get(t, ctx, chromedp.Text(chromedp.CSS(css)))
}

func attr(t *testing.T, ctx context.Context, css, name string) string {
	t.Helper()
	return get(t, ctx, chromedp.AttributeValue(chromedp.CSS(css), name)).Value
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	return get(t, ctx, chromedp.Evaluate[T](expr))
}

// login signs in through the login form, as a person would.
func login(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	run(t, ctx,
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS(".who .badge")),
	)
}

// screenshot writes the current page at a laptop and a phone width into
// $CISSAN_SCREENSHOTS, if set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("CISSAN_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		suffix string
		w, h   int64
		mobile bool
	}{{"laptop", 1366, 768, false}, {"phone", 390, 844, true}} {
		opts := []chromedp.EmulateViewportOption{}
		if v.mobile {
			opts = append(opts, chromedp.EmulateScale(2), chromedp.EmulateMobile)
		}
		run(t, ctx, chromedp.EmulateViewport(v.w, v.h, opts...), chromedp.Sleep(200*time.Millisecond))
		buf := get(t, ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err := os.WriteFile(filepath.Join(dir, name+"-"+v.suffix+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, ctx, chromedp.EmulateViewport(1366, 768))
}

func TestBrowserDashboardMovesWhileDevicesPublish(t *testing.T) {
	ctx := newBrowser(t)
	tn := startNet(t, 2)
	d := tn.device("dash-dev", "acme/dash")
	run(t, ctx, chromedp.Navigate(tn.APIURL+"/"), chromedp.WaitVisible(chromedp.CSS("#chart-rate")))
	before := text(t, ctx, "#s-events")
	pathBefore := attr(t, ctx, "#chart-height path.line", "d")

	// Publish for a while.
	pctx, stop := context.WithCancel(t.Context())
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			// 10 to 40 events a second, changing every few seconds.
			pause := time.Duration(25+int(75*float64((i/60)%4)/3)) * time.Millisecond
			select {
			case <-pctx.Done():
				return
			case <-time.After(pause):
				b, _ := json.Marshal(map[string]any{"uid": "dash-" + strconv.Itoa(i), "timestamp": time.Now().UnixMilli(),
					"items": []map[string]any{{"key": "temperature", "value": 20 + float64(i%7)}}, "namespace": d.Namespace, "device_uid": d.UID})
				if _, err := d.Publish(pctx, "devices/dash-dev/events", b); err != nil && pctx.Err() == nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		}
	}()

	deadline := time.Now().Add(15 * time.Second)
	for {
		after, rate := text(t, ctx, "#s-events"), text(t, ctx, "#s-rate")
		pathAfter := attr(t, ctx, "#chart-height path.line", "d")
		// The events/s chart grows by a point with every sample.
		points, _ := strconv.Atoi(attr(t, ctx, "#chart-rate path.line", "data-points"))
		if count(after) >= count(before)+20 && pathAfter != pathBefore && rateOf(rate) > 0 && points >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard did not move: events %q -> %q, rate %q, chart changed %v, events/s chart of %d points",
				before, after, rate, pathAfter != pathBefore, points)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if live := attr(t, ctx, "#live-state", "class"); !strings.Contains(live, "on") {
		t.Errorf("live indicator %q: the Server-Sent Events stream is not open", live)
	}
	if os.Getenv("CISSAN_SCREENSHOTS") != "" {
		time.Sleep(20 * time.Second) // a longer stretch of chart for the picture
	}
	screenshot(t, ctx, "dashboard")
	stop()
	<-done
}

func count(s string) int {
	n, _ := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	return n
}

func rateOf(s string) float64 {
	f, _ := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return f
}

func TestBrowserBlockListsEveryHubsValidation(t *testing.T) {
	ctx := newBrowser(t)
	tn := startNet(t, 3)
	d := tn.device("val-dev", "acme/val")
	publish(t, d, "val-1", time.Now(), "temperature", 21.5)
	tn.waitFinal("val-1")
	loc, err := tn.locate("val-1")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/blocks/%d", tn.APIURL, loc.Height)), chromedp.WaitVisible(chromedp.CSS("#validations")))
	hubs := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#validations tr[data-hub]')).map(r => r.dataset.hub)`)
	verdicts := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#validations tr[data-hub] td:nth-child(2)')).map(td => td.textContent.trim())`)
	if strings.Join(hubs, ",") != "hub-1,hub-2,hub-3" {
		t.Fatalf("block page lists validations by %v, want hub-1, hub-2 and hub-3", hubs)
	}
	for i, v := range verdicts {
		if v != "accept" {
			t.Errorf("%s's verdict shown as %q, want accept", hubs[i], v)
		}
	}
	if private := text(t, ctx, "#entries-private"); !strings.Contains(private, "token holders only") {
		t.Errorf("anonymous block page entries section: %q", private)
	}
	screenshot(t, ctx, "block-anonymous")
}

// downloadProof opens the event's page, clicks the proof link and returns
// the downloaded file's bytes.
func downloadProof(t *testing.T, ctx context.Context, base, uid string) []byte {
	t.Helper()
	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true),
	}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	run(t, ctx, chromedp.Navigate(base+"/events/"+uid), chromedp.WaitVisible(chromedp.CSS("#proof-json")))
	screenshot(t, ctx, "event")
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	events := chromedp.BrowserEvents(tctx, browser.DownloadProgress)
	run(t, ctx, chromedp.Click(chromedp.CSS("#proof-json")))
	for ev, err := range events {
		if err != nil {
			t.Fatalf("the proof did not download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			b, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatal("the proof did not download")
	return nil
}

// verifyFile checks file on the Verify page, with optional extra files
// (input selector, path, ...), and returns the verdict ("valid" or
// "invalid"), its text and the list of checks.
func verifyFile(t *testing.T, ctx context.Context, base, file string, extra ...string) (string, string, []string) {
	t.Helper()
	steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(base + "/verify"), chromedp.WaitVisible(chromedp.CSS("#proof-file"))}
	for i := 0; i+1 < len(extra); i += 2 {
		steps = append(steps, chromedp.SetUploadFiles(chromedp.CSS(extra[i]), []string{extra[i+1]}))
	}
	steps = append(steps, chromedp.SetUploadFiles(chromedp.CSS("#proof-file"), []string{file}))
	run(t, ctx, steps...)
	get(t, ctx, chromedp.Poll[bool](`['valid','invalid'].includes(document.querySelector('#verdict').dataset.result)`,
		chromedp.WithPollingTimeout(10*time.Second)))
	return attr(t, ctx, "#verdict", "data-result"), text(t, ctx, "#verdict"),
		eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#checks li')).map(li => li.textContent)`)
}

func TestBrowserProofDownloadsAndVerifies(t *testing.T) {
	ctx := newBrowser(t)
	tn := startNet(t, 2)
	d := tn.device("proof-dev", "acme/proof")
	publish(t, d, "proof-evt-1", time.Now(), "temperature", 22.25, "note", "hello")
	publish(t, d, "proof-evt-2", time.Now(), "temperature", 99.5) // out of range: tagged
	tn.waitFinal("proof-evt-2")
	login(t, ctx, tn.APIURL, tn.Token)
	raw := downloadProof(t, ctx, tn.APIURL, "proof-evt-2")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.proof.json")
	if err := os.WriteFile(good, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	result, verdict, checks := verifyFile(t, ctx, tn.APIURL, good)
	if result != "valid" || !strings.Contains(verdict, "proof-evt-2") {
		t.Fatalf("verify page on the downloaded proof: %s %q\n%s", result, verdict, strings.Join(checks, "\n"))
	}
	for _, want := range []string{"master signature", "entry", "inclusion", "validations[0]", "validations[1]", "quorum"} {
		if !strings.Contains(strings.Join(checks, "\n"), "✓ "+want) {
			t.Errorf("checks do not list %q as passed:\n%s", want, strings.Join(checks, "\n"))
		}
	}
	if unchecked := text(t, ctx, "#unchecked"); !strings.Contains(unchecked, "Bitcoin") || !strings.Contains(unchecked, "network.json itself") {
		t.Errorf("the page does not say what it did not check: %q", unchecked)
	}
	screenshot(t, ctx, "verify-valid")

	// One byte changed, in each signed or hashed part: refused.
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"header", "entry", "master_signature", "entries_path", "block_hash"} {
		var v string
		switch x := b[field].(type) {
		case string:
			v = x
		case []any:
			if len(x) == 0 {
				continue
			}
			v = x[0].(string)
		}
		i := strings.Index(string(raw), v) + len(v)/2
		bad := append([]byte(nil), raw...)
		bad[i] = flip(bad[i])
		f := filepath.Join(dir, field+".proof.json")
		if err := os.WriteFile(f, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if result, verdict, _ := verifyFile(t, ctx, tn.APIURL, f); result != "invalid" {
			t.Errorf("one byte of %s changed: verdict %s %q, want refused", field, result, verdict)
		}
		if field == "entry" {
			screenshot(t, ctx, "verify-refused")
		}
	}

	// What one reader could read one way and another another way is
	// refused, as by cissan verify proof (SPEC.md, "One text per bundle").
	sig := b["master_signature"].(string)
	for _, c := range []struct {
		name, why string
		bad       []byte
	}{
		{"leaf_index twice", `member "leaf_index" twice`, bytes.Replace(raw, []byte(`{`), []byte(`{"leaf_index":0,`), 1)},
		{"upper-case hex", "not lower-case hex", bytes.Replace(raw, []byte(sig), []byte(strings.ToUpper(sig)), 1)},
		{"invalid UTF-8", "not valid UTF-8", bytes.Replace(raw, []byte(`"hub-1"`), []byte("\"hub-1\xff\""), 1)},
	} {
		if bytes.Equal(c.bad, raw) {
			t.Fatalf("%s: the mutation changed nothing", c.name)
		}
		f := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".proof.json")
		if err := os.WriteFile(f, c.bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if result, verdict, _ := verifyFile(t, ctx, tn.APIURL, f); result != "invalid" || !strings.Contains(verdict, c.why) {
			t.Errorf("%s: verdict %s %q, want refused saying %q", c.name, result, verdict, c.why)
		}
	}

	// A malformed Bitcoin anchor is refused, in a version 2 bundle as
	// much as in a version 1 bundle, which may not carry one at all (the
	// vectors' test checks a well-formed one).
	for _, c := range []struct {
		version int
		want    string
	}{{2, "invalid"}, {1, "invalid"}} {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		m["version"], m["anchor"] = c.version, map[string]any{"history_path": []string{}, "raw_tx": "00"}
		out, _ := json.Marshal(m)
		f := filepath.Join(dir, fmt.Sprintf("anchored-v%d.proof.json", c.version))
		if err := os.WriteFile(f, out, 0o644); err != nil {
			t.Fatal(err)
		}
		result, verdict, _ := verifyFile(t, ctx, tn.APIURL, f)
		if result != c.want {
			t.Errorf("version %d bundle with an anchor: %s %q, want %s", c.version, result, verdict, c.want)
		}
		if c.version == 2 && !strings.Contains(text(t, ctx, "#verdict"), "anchor") {
			t.Errorf("the refusal of a malformed anchor does not name the anchor check: %q", text(t, ctx, "#verdict"))
		}
	}

	// An event file that differs from the logged event is refused too.
	ev := filepath.Join(dir, "event.json")
	if err := os.WriteFile(ev, []byte(`{"uid":"proof-evt-2","timestamp":1,"items":[{"key":"temperature","value":99.5}],"namespace":"acme/proof","device_uid":"proof-dev"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if result, verdict, _ := verifyFile(t, ctx, tn.APIURL, good, "#event-file", ev); result != "invalid" || !strings.Contains(verdict, "timestamp") {
		t.Errorf("event JSON with another timestamp: %s %q, want refused naming the timestamp", result, verdict)
	}
}

// flip changes a hex or base64 character into another one of the same
// alphabet, so only the value changes, not the form.
func flip(c byte) byte {
	switch {
	case c == 'a':
		return 'b'
	case c >= '0' && c <= '8':
		return c + 1
	case c == '9':
		return '0'
	default:
		return 'a'
	}
}

func TestBrowserVerifiesTheTestVectors(t *testing.T) {
	ctx := newBrowser(t)
	tn := startNet(t, 1)
	raw, err := os.ReadFile("../../testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		NetworkJSON json.RawMessage `json:"network_json"`
		ProofBundle json.RawMessage `json:"proof_bundle"`
		Anchored    json.RawMessage `json:"anchored_proof_bundle"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	net, bundle := filepath.Join(dir, "network.json"), filepath.Join(dir, "vector.proof.json")
	if err := os.WriteFile(net, v.NetworkJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundle, v.ProofBundle, 0o644); err != nil {
		t.Fatal(err)
	}
	result, verdict, checks := verifyFile(t, ctx, tn.APIURL, bundle, "#network-file", net)
	if result != "valid" || !strings.Contains(verdict, "evt-0001") {
		t.Fatalf("the spec's test vector bundle: %s %q\n%s", result, verdict, strings.Join(checks, "\n"))
	}
	// Against this server's network.json instead: another network.
	if result, verdict, _ = verifyFile(t, ctx, tn.APIURL, bundle); result != "invalid" || !strings.Contains(verdict, "network") {
		t.Fatalf("vector bundle against another network: %s %q, want refused", result, verdict)
	}

	// The anchored vector: the page checks its Bitcoin part, says it did
	// not check that Bitcoin's chain holds the block, and refuses it with
	// one byte changed in the transaction, the Bitcoin header or the
	// history path.
	anchored := filepath.Join(dir, "anchored.proof.json")
	if err := os.WriteFile(anchored, v.Anchored, 0o644); err != nil {
		t.Fatal(err)
	}
	result, verdict, checks = verifyFile(t, ctx, tn.APIURL, anchored, "#network-file", net)
	if result != "valid" || !strings.Contains(verdict, "Bitcoin block 1000") {
		t.Fatalf("the anchored vector bundle: %s %q\n%s", result, verdict, strings.Join(checks, "\n"))
	}
	for _, c := range []string{"anchor history", "anchor transaction", "bitcoin inclusion"} {
		if !strings.Contains(strings.Join(checks, "\n"), c) {
			t.Errorf("the checks passed do not list %q:\n%s", c, strings.Join(checks, "\n"))
		}
	}
	if !strings.Contains(text(t, ctx, "#unchecked"), "Bitcoin's chain holds block") {
		t.Error("the page does not say that it left the Bitcoin chain unchecked")
	}
	var m map[string]any
	if err := json.Unmarshal(v.Anchored, &m); err != nil {
		t.Fatal(err)
	}
	a := m["anchor"].(map[string]any)
	for _, field := range []string{"tx", "bitcoin_header", "anchored_header"} {
		s := a[field].(string)
		i := strings.Index(string(v.Anchored), s) + len(s)/2
		bad := append([]byte(nil), v.Anchored...)
		bad[i] = flip(bad[i])
		f := filepath.Join(dir, field+".anchored.proof.json")
		if err := os.WriteFile(f, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if result, verdict, _ := verifyFile(t, ctx, tn.APIURL, f, "#network-file", net); result != "invalid" {
			t.Errorf("anchored vector with a byte of %s changed: %s %q, want refused", field, result, verdict)
		}
	}
}

func TestBrowserAnonymousSeesNoEventContent(t *testing.T) {
	ctx := newBrowser(t)
	tn := fixture(t, 2)
	seen := map[string]string{}
	queue := []string{"/"}
	for len(queue) > 0 && len(seen) < 150 {
		p := queue[0]
		queue = queue[1:]
		if _, ok := seen[p]; ok {
			continue
		}
		run(t, ctx, chromedp.Navigate(tn.APIURL+p), chromedp.Sleep(50*time.Millisecond)) // let the dashboard's script draw
		seen[p] = get(t, ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		for _, l := range eval[[]string](t, ctx, `Array.from(document.querySelectorAll('a[href]')).map(a => a.href)`) {
			if !strings.HasPrefix(l, tn.APIURL+"/") {
				continue
			}
			next := strings.TrimPrefix(l, tn.APIURL)
			if i := strings.IndexByte(next, '#'); i >= 0 {
				next = next[:i]
			}
			if _, ok := seen[next]; !ok && next != "/live" {
				queue = append(queue, next)
			}
		}
	}
	if len(seen) < 8 {
		t.Fatalf("crawled only %d pages: %v", len(seen), keys(seen))
	}
	assertNoSecrets(t, seen, secrets)
	t.Logf("crawled %d pages without a token", len(seen))
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestBrowserReadTokenSeesItsNamespaceOnly(t *testing.T) {
	ctx := newBrowser(t)
	tn := fixture(t, 2)
	nt, err := tn.Registry.CreateReadToken(t.Context(), "auditor-y", []string{"orgy/other"})
	if err != nil {
		t.Fatal(err)
	}
	login(t, ctx, tn.APIURL, nt.Token)
	run(t, ctx, chromedp.Navigate(tn.APIURL+"/events"), chromedp.WaitVisible(chromedp.CSS("#results")))
	rows := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#results tbody tr')).map(r => r.textContent)`)
	if len(rows) != 1 || !strings.Contains(rows[0], "evt-secret-b0") {
		t.Fatalf("read token for orgy/other sees rows %q, want only evt-secret-b0", rows)
	}
	if nav := text(t, ctx, "header nav"); strings.Contains(nav, "Devices") {
		t.Errorf("menu offers Devices to a read token: %q", nav)
	}
	screenshot(t, ctx, "search-read-token")
	run(t, ctx, chromedp.Navigate(tn.APIURL+"/events/evt-secret-a01"))
	if h := text(t, ctx, "h1"); h != "No such event" {
		t.Errorf("another namespace's event page: heading %q, want No such event", h)
	}
	// The search form cannot widen the scope either.
	run(t, ctx, chromedp.Navigate(tn.APIURL+"/events?namespace=orgx/grpsecret"), chromedp.WaitVisible(chromedp.CSS("#results")))
	if rows := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#results tbody tr a')).map(a => a.textContent)`); len(rows) != 0 {
		t.Errorf("read token searching another namespace sees %q", rows)
	}
}

// TestBrowserTour opens every page as the operator, checks that each
// renders without script errors, and takes the screenshots for
// docs/screenshots when CISSAN_SCREENSHOTS is set.
func TestBrowserTour(t *testing.T) {
	ctx := newBrowser(t)
	tn := fixture(t, 3)
	login(t, ctx, tn.APIURL, tn.Token)
	loc, err := tn.locate("evt-secret-a07")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a few samples for the charts
	for _, p := range []struct{ name, path, wait string }{
		{"dashboard-operator", "/", "#chart-rate path"},
		{"blocks", "/blocks", "#blocks"},
		{"block-operator", fmt.Sprintf("/blocks/%d", loc.Height), "#entries"},
		{"search", "/events?device=dev-secret-a", "#results"},
		{"event-tagged", "/events/evt-secret-a07", "#tags"},
		{"devices", "/devices", "#device-list"},
		{"device", "/devices/dev-secret-a", "#device-chart"},
		{"verify", "/verify", "#verify-form"},
	} {
		run(t, ctx, chromedp.Navigate(tn.APIURL+p.path), chromedp.WaitVisible(chromedp.CSS(p.wait)))
		screenshot(t, ctx, p.name)
	}
	run(t, ctx, chromedp.Navigate(tn.APIURL+"/"), chromedp.Click(chromedp.CSS(".who button")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/login"]`)), chromedp.Navigate(tn.APIURL+"/login"), chromedp.WaitVisible(chromedp.CSS("#token")))
	screenshot(t, ctx, "login")
}
