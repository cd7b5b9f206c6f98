// Package explorer serves the web pages of a node: a live dashboard, blocks,
// events, devices and a proof verifier that runs in the browser. Pages are
// rendered on the server with html/template; the few live parts (charts fed
// by Server-Sent Events, the verifier) are small scripts embedded in the
// binary, so there is no front-end build step and nothing is fetched from
// elsewhere.
//
// Privacy follows the API's rule. Without a token a visitor sees block
// headers, counts, hubs' validations and anchors only: never an event's
// contents, uid, device id or namespace, and not even entry digests (a
// digest lets anyone confirm a guessed event, and sensor events are easy
// to guess). A read token sees the events of its namespaces; the operator
// token sees everything, devices included.
//
// The dashboard renders from a snapshot that a sampler refreshes once a
// second (counters, heights, the last few minutes of rates) and from the
// newest few block headers, never from a scan of the events: its cost does
// not grow with the chain.
package explorer

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"cissan/internal/access"
	"cissan/internal/api"
	"cissan/internal/ledger"
	"cissan/internal/metrics"
	"cissan/internal/registry"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the explorer shows and who may see what.
type Config struct {
	// Ledger is the node whose chain is shown (the master in `cissan up`).
	Ledger *ledger.Ledger
	// Access maps a token (bearer header or login cookie) to what it may
	// read; nil admits nobody to private pages.
	Access access.Resolver
	// Status returns the node states and device counts, as for GET
	// /v1/status: "nodes" ([]map[string]any with id, role, height, pool),
	// "devices" (map[registry.Status]int) and, when anchoring is on,
	// "anchor". It is called by the sampler, not by page requests.
	Status func(ctx context.Context) map[string]any
	// Metrics, if set, supplies ingest and rejection counters.
	Metrics *metrics.Metrics
	// Anchor returns the Bitcoin anchor covering a block; nil when
	// anchoring is off.
	Anchor func(height uint64) *api.AnchorJSON
	// AnchorStatus returns the anchoring state for the dashboard (address,
	// balance_sat, last_anchor, next_anchor, state); nil when off. A
	// Status answer with an "anchor" member is used when this is nil.
	AnchorStatus func(ctx context.Context) any
	// Registry, if set, backs the devices pages (operator only).
	Registry *registry.Registry
	// Pending reports whether an event of uid waits in a pool: the event
	// of device deviceUID, or of any device if "".
	Pending func(uid, deviceUID string) bool
	// SampleEvery is the dashboard's refresh period (default 1 s).
	SampleEvery time.Duration
	// Sessions keeps sign-ins on the server. Give the API the same
	// Sessions' Resolver, so that a signed-in browser reads through it
	// too (proof downloads); nil: the explorer keeps its own.
	Sessions *access.Sessions
	// Secure marks the login cookie Secure (set it behind HTTPS).
	Secure bool
	Log    *slog.Logger
}

// Explorer is the web UI of one node. It is an http.Handler; Run feeds
// the dashboard.
type Explorer struct {
	c     Config
	pages map[string]*template.Template
	mux   *http.ServeMux
	live  *sampler
}

// New builds the explorer. Call Run to keep the dashboard live.
func New(c Config) (*Explorer, error) {
	if c.Ledger == nil {
		return nil, fmt.Errorf("explorer: no ledger")
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Sessions == nil {
		c.Sessions = access.NewSessions(0, 0, nil)
	}
	if c.Access != nil {
		c.Access = c.Sessions.Resolver(c.Access)
	}
	e := &Explorer{c: c, pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	if err := e.parseTemplates(); err != nil {
		return nil, err
	}
	e.live = newSampler(&e.c)
	e.live.newest = func(top uint64) ([]blockRow, error) { return e.newestBlocks(top, dashBlocks) }
	e.routes()
	return e, nil
}

// Mount registers the explorer's routes on mux, next to the API's. The
// explorer owns "/" and the paths below; the API's /v1/ and /metrics stay
// with their handlers, being more specific.
func (e *Explorer) Mount(mux *http.ServeMux) {
	mux.Handle("/", e)
}

// Run samples the node once per SampleEvery until ctx ends, and pushes
// each sample to live dashboards; when it returns, live streams end. Call
// it once.
func (e *Explorer) Run(ctx context.Context) {
	e.live.run(ctx, e.c.SampleEvery)
}

// Sample takes one sample now (Run does this every SampleEvery).
func (e *Explorer) Sample(ctx context.Context) { e.live.sample(ctx, time.Now(), -1) }

func (e *Explorer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Scripts, styles and images come from this server only; nothing
	// inline runs, so injected markup could not run either.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // "no-referrer" would make browsers send "Origin: null" on our own forms
	h.Set("X-Frame-Options", "DENY")
	e.mux.ServeHTTP(w, r)
}

func (e *Explorer) routes() {
	e.mux.HandleFunc("GET /static/", e.static)
	e.mux.HandleFunc("GET /{$}", e.dashboard)
	e.mux.HandleFunc("GET /live", e.liveStream)
	e.mux.HandleFunc("GET /blocks", e.blocks)
	e.mux.HandleFunc("GET /blocks/{height}", e.block)
	e.mux.HandleFunc("GET /events", e.search)
	e.mux.HandleFunc("GET /events/{uid}", e.event)
	e.mux.HandleFunc("GET /devices", e.devices)
	e.mux.HandleFunc("GET /devices/{uid}", e.device)
	e.mux.HandleFunc("GET /verify", e.verify)
	e.mux.HandleFunc("GET /login", e.loginForm)
	e.mux.HandleFunc("POST /login", e.login)
	e.mux.HandleFunc("POST /logout", e.logout)
	e.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		e.fail(w, r, http.StatusNotFound, "No such page", "There is nothing at "+r.URL.Path+".")
	})
}

// static serves the embedded scripts, styles and images. Only a clean
// name of a file in the static directory is served; anything else, such as
// an invalid escape (%ff), overlong UTF-8 dots or a directory, is a 404.
func (e *Explorer) static(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/static/")
	if !ok || !utf8.ValidString(name) || !fs.ValidPath(name) || strings.Contains(name, "\\") {
		e.fail(w, r, http.StatusNotFound, "No such page", "There is no such file.")
		return
	}
	static, _ := fs.Sub(staticFS, "static")
	if fi, err := fs.Stat(static, name); err != nil || !fi.Mode().IsRegular() {
		e.fail(w, r, http.StatusNotFound, "No such page", "There is no such file.")
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	http.ServeFileFS(w, r, static, name)
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string // the active menu entry
	Access  access.Access
	Network string
	Data    any
}

var funcs = template.FuncMap{
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
	"ms": func(ms int64) string {
		if ms == 0 {
			return "—"
		}
		return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000 UTC")
	},
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"ago":    ago,
	"num":    num,
	"join":   strings.Join,
	"plus1":  func(v uint64) uint64 { return v + 1 },
	"clock":  func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"minus1": func(v uint64) uint64 { return v - 1 },
	// days writes a number of days: whole ones from 10 up, tenths below.
	"days": func(d *float64) string {
		if *d >= 10 {
			return num(uint64(*d))
		}
		return fmt.Sprintf("%.1f", *d)
	},
	"btc": func(sat any) string {
		var v float64
		switch x := sat.(type) {
		case *int64:
			if x == nil {
				return "—"
			}
			v = float64(*x)
		case int64:
			v = float64(x)
		case float64:
			v = x
		case int:
			v = float64(x)
		case uint64:
			v = float64(x)
		default:
			return fmt.Sprint(sat)
		}
		return fmt.Sprintf("%.8f BTC", v/1e8)
	},
}

func (e *Explorer) parseTemplates() error {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return fmt.Errorf("explorer templates: %w", err)
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("explorer template %s: %w", n, err)
		}
		e.pages[base] = t
	}
	return nil
}

// render writes page name with data. Pages that may show private data are
// never cached by the browser or a proxy.
func (e *Explorer) render(w http.ResponseWriter, r *http.Request, code int, name, title, nav string, a access.Access, data any) {
	t := e.pages[name]
	if t == nil {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	var buf strings.Builder
	err := t.Execute(&buf, page{Title: title, Nav: nav, Access: a, Network: e.c.Ledger.Network().ID.String(), Data: data})
	if err != nil {
		e.c.Log.Error("explorer render", "page", name, "err", err)
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(buf.String()))
}

type failure struct{ Heading, Message string }

func (e *Explorer) fail(w http.ResponseWriter, r *http.Request, code int, heading, msg string) {
	e.render(w, r, code, "error", heading, "", e.accessOf(r), failure{heading, msg})
}

func (e *Explorer) accessOf(r *http.Request) access.Access {
	return access.Of(r, e.c.Access)
}

// needToken answers a private page asked for without a sufficient token.
func (e *Explorer) needToken(w http.ResponseWriter, r *http.Request, what string) {
	e.render(w, r, http.StatusUnauthorized, "login", "Sign in", "", access.Public, loginData{
		Next: r.URL.RequestURI(), Message: what + " need a token. Sign in with the operator token or a read token.",
	})
}

type loginData struct {
	Next, Message, Error string
}

func (e *Explorer) loginForm(w http.ResponseWriter, r *http.Request) {
	e.render(w, r, http.StatusOK, "login", "Sign in", "login", e.accessOf(r), loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

// login checks the token and starts a session for it on the server; the
// browser gets only the session id, in an HttpOnly, SameSite=Strict
// cookie: scripts cannot read it and other sites cannot send it.
func (e *Explorer) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		e.fail(w, r, http.StatusForbidden, "Refused", "Sign in from this site's own form.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		e.fail(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	next := safeNext(r.PostForm.Get("next"))
	var a access.Access
	if e.c.Access != nil && tok != "" {
		a = e.c.Access(r, tok)
	}
	if !a.Granted() {
		e.render(w, r, http.StatusUnauthorized, "login", "Sign in", "login", access.Public, loginData{Next: next, Error: "That token is not valid here."})
		return
	}
	id, err := e.c.Sessions.Create(tok)
	if err != nil {
		e.c.Log.Error("explorer sign-in", "err", err)
		e.fail(w, r, http.StatusInternalServerError, "Sign-in failed", "No session could be started; try again.")
		return
	}
	if old, err := r.Cookie(access.CookieName); err == nil {
		e.c.Sessions.Delete(old.Value)
	}
	http.SetCookie(w, &http.Cookie{
		Name: access.CookieName, Value: id, Path: "/", HttpOnly: true, Secure: e.c.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(e.c.Sessions.TTL().Seconds()),
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (e *Explorer) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		e.fail(w, r, http.StatusForbidden, "Refused", "Sign out from this site's own pages.")
		return
	}
	if c, err := r.Cookie(access.CookieName); err == nil {
		e.c.Sessions.Delete(c.Value) // a copy of the cookie is worth nothing from now on
	}
	http.SetCookie(w, &http.Cookie{Name: access.CookieName, Value: "", Path: "/", HttpOnly: true, Secure: e.c.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// sameOrigin refuses a form posted from another site, so that no page
// elsewhere can sign a visitor in with a token of its choosing (or out).
// Browsers send Origin with every POST; a request without one is not from
// a browser's cross-site form.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// safeNext keeps a post-login redirect on this site.
func safeNext(s string) string {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") {
		return "/"
	}
	return s
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 2*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// num writes an integer with thin separators: 10 000 000.
func num(v any) string {
	s := fmt.Sprint(v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if strings.ContainsAny(s, ".e") || len(s) <= 3 {
		if neg {
			return "-" + s
		}
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteRune(' ')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

var _ http.Handler = (*Explorer)(nil)
