// Package api serves the JSON HTTP API of a node: status, blocks, events,
// proofs and search. Block headers, validations and counts are public;
// event contents, device ids, namespaces and proofs need a bearer token.
// Errors are JSON objects {"error": "..."} with a fitting status code.
package api

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"cissan/internal/access"
	"cissan/internal/anchor"
	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/index"
	"cissan/internal/ledger"
	"cissan/internal/proof"
)

// Config is what the API serves from.
type Config struct {
	Ledger *ledger.Ledger // the node whose chain is served (the master in `cissan up`)
	// Pending reports whether an event of uid waits in some pool, not yet
	// in a block: the event of device deviceUID, or of any device if "".
	Pending func(uid, deviceUID string) bool
	// Status returns extra fields for GET /v1/status (nodes, pools, devices).
	Status func(ctx context.Context) map[string]any
	// Authorize admits requests for event contents and proofs. It is
	// consulted only when Access is nil, and then grants everything.
	Authorize func(*http.Request) bool
	// Access says what a request's token may read: everything (operator),
	// the events of some namespaces (read tokens), or nothing private.
	// Events, proofs and search are limited to the token's namespaces;
	// an event outside them is answered 404, as if it did not exist.
	Access access.Resolver
	// Operator admits requests that change the network (the operator
	// token); nil refuses them all.
	Operator func(*http.Request) bool
	// Master queues analyzer configurations and hub enrolments; nil on
	// nodes that are not the master.
	Master ControlQueue
	// Anchor returns the Bitcoin timestamp covering the block at a height;
	// nil when anchoring is off.
	Anchor func(height uint64) *AnchorJSON
	// AnchorProof returns the Bitcoin part of the proofs of a block's
	// entries, or nil while none is confirmed; nil when anchoring is off.
	AnchorProof func(height uint64) (*proof.Anchor, error)
	Log         *slog.Logger
}

// AnchorJSON is how a block is timestamped on Bitcoin. A transaction
// carries the hash of one block (AnchoredHeight); it covers that block
// and every earlier one through the history tree.
type AnchorJSON = anchor.BlockStatus

// ControlQueue is the master's side of changes recorded on the chain.
type ControlQueue interface {
	SetAnalyzers(raw []byte) error
	PendingAnalyzers() ([]byte, error)
	EnrolHub(e chain.Enrolment) error
}

// Handler returns the API's routes on mux.
func Handler(c Config, mux *http.ServeMux) {
	s := &server{c: c}
	mux.HandleFunc("GET /v1/status", takes(s.status))
	mux.HandleFunc("GET /v1/network", takes(s.network))
	mux.HandleFunc("GET /v1/blocks", takes(s.blocks, "before", "limit"))
	mux.HandleFunc("GET /v1/blocks/{height}", takes(s.block))
	mux.HandleFunc("GET /v1/events", s.private(takes(s.search, searchParams...)))
	mux.HandleFunc("GET /v1/events/{uid}", s.private(takes(s.event, eventParams...)))
	mux.HandleFunc("GET /v1/events/{uid}/proof", s.private(takes(s.proof, append(eventParams, "format")...)))
	mux.HandleFunc("GET /v1/analyzers", s.operatorRead(takes(s.analyzers)))
	mux.HandleFunc("POST /v1/analyzers", s.masterOperator(takes(s.setAnalyzers)))
	mux.HandleFunc("POST /v1/hubs", s.masterOperator(takes(s.enrolHub)))
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
}

type server struct {
	c Config
}

// takes wraps a handler that reads the query parameters names, and refuses
// a request with any other, or with one of them twice. Ignored, a misspelt
// parameter would change nothing silently: a search for ?device_uid=x
// (the filter is device=) returned every event.
func takes(h http.HandlerFunc, names ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for name, vals := range r.URL.Query() {
			switch {
			case len(names) == 0:
				writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q: %s takes none", name, r.URL.Path))
				return
			case !slices.Contains(names, name):
				writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q: %s takes %s", name, r.URL.Path, strings.Join(names, ", ")))
				return
			case len(vals) > 1:
				writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter %q given %d times", name, len(vals)))
				return
			}
		}
		h(w, r)
	}
}

// accessOf is what r may read.
func (s *server) accessOf(r *http.Request) access.Access {
	if s.c.Access != nil {
		return access.Of(r, s.c.Access)
	}
	if s.c.Authorize != nil && s.c.Authorize(r) {
		return access.Access{All: true, Label: "operator"}
	}
	return access.Public
}

type accessKey struct{}

// requestAccess is the access private stored in r's context.
func requestAccess(r *http.Request) access.Access {
	a, _ := r.Context().Value(accessKey{}).(access.Access)
	return a
}

// private admits requests whose token reads event contents, and hands
// the token's access to the handler (requestAccess).
func (s *server) private(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := s.accessOf(r)
		if !a.Granted() {
			writeError(w, http.StatusUnauthorized, "bearer token required for event contents and proofs")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), accessKey{}, a)))
	}
}

// operatorRead admits reads that span every namespace (the analyzer
// configuration names namespaces): the operator's only.
func (s *server) operatorRead(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := s.accessOf(r)
		switch {
		case a.All:
			h(w, r)
		case a.Granted():
			writeError(w, http.StatusForbidden, "operator token required: a read token sees only its namespaces' events")
		default:
			writeError(w, http.StatusUnauthorized, "operator bearer token required")
		}
	}
}

// masterOperator admits requests that change the chain: the operator's,
// on the master.
func (s *server) masterOperator(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.c.Operator == nil || !s.c.Operator(r) {
			writeError(w, http.StatusUnauthorized, "operator bearer token required")
			return
		}
		if s.c.Master == nil {
			writeError(w, http.StatusNotFound, "this node is not the master")
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (s *server) internal(w http.ResponseWriter, what string, err error) {
	s.c.Log.Error("api", "what", what, "err", err)
	writeError(w, http.StatusInternalServerError, what+": "+err.Error())
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	led := s.c.Ledger
	out := map[string]any{
		"network_id": led.Network().ID.String(),
		"height":     led.Height(),
		"quorum":     led.Network().Quorum,
	}
	if h := led.Height(); h > 0 {
		hdr, _, err := led.Store().Header(h - 1)
		if err != nil {
			s.internal(w, "read head", err)
			return
		}
		out["head_hash"] = hex.EncodeToString(hashSlice(hdr.Hash()))
		out["head_mint_time"] = time.UnixMilli(hdr.MintTimeMs).UTC()
		out["final_height"] = led.FinalHeight()
	}
	// Search (GET /v1/events) sees the blocks below indexed_height; it
	// trails final_height by the moments the index takes.
	out["indexed_height"] = led.IndexedHeight()
	out["events"] = led.Events()
	out["tagged_events"] = led.Tagged()
	if s.c.Status != nil {
		for k, v := range s.c.Status(r.Context()) {
			out[k] = v
		}
		if !s.accessOf(r).All {
			hideAddresses(out)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// addressKeys are the members of a node's status that say where it
// listens. Only the operator sees them: to anyone else they are a map of
// the network's attack surface.
var addressKeys = []string{"mqtt", "mqtts", "http", "https", "addr", "address", "url"}

// hideAddresses removes every node's addresses from a status answer.
func hideAddresses(out map[string]any) {
	nodes, _ := out["nodes"].([]map[string]any)
	for i, n := range nodes {
		c := make(map[string]any, len(n))
		for k, v := range n {
			if !slices.Contains(addressKeys, k) {
				c[k] = v
			}
		}
		nodes[i] = c
	}
}

func (s *server) network(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.c.Ledger.Network())
}

func hashSlice(h chain.Hash) []byte { return h[:] }

// BlockJSON is a block header with its signature, validations and
// finality, as GET /v1/blocks/{height} returns it.
type BlockJSON struct {
	Height          uint64                 `json:"height"`
	Hash            string                 `json:"hash"`
	NetworkID       string                 `json:"network_id"`
	PrevHash        string                 `json:"prev_hash"`
	MintTime        time.Time              `json:"mint_time"`
	MintTimeMs      int64                  `json:"mint_time_ms"`
	EntryCount      uint64                 `json:"entry_count"`
	EntriesRoot     string                 `json:"entries_root"`
	HistoryRoot     string                 `json:"history_root"`
	ControlRoot     string                 `json:"control_root"`
	Header          string                 `json:"header"`
	MasterSignature string                 `json:"master_signature"`
	Validations     []proof.ValidationJSON `json:"validations"`
	Accepted        int                    `json:"accepted"`
	Rejected        int                    `json:"rejected"`
	Quorum          int                    `json:"quorum"`
	Final           bool                   `json:"final"`
	Anchor          *AnchorJSON            `json:"anchor,omitempty"`
}

func (s *server) blockJSON(h uint64) (*BlockJSON, error) {
	hdr, sig, err := s.c.Ledger.Store().Header(h)
	if err != nil {
		return nil, err
	}
	ok, vals, err := s.c.Ledger.Accepting(h)
	if err != nil {
		return nil, err
	}
	hash := hdr.Hash()
	b := &BlockJSON{
		Height: h, Hash: hex.EncodeToString(hash[:]), NetworkID: hdr.Network.String(),
		PrevHash: hex.EncodeToString(hdr.Prev[:]), MintTime: time.UnixMilli(hdr.MintTimeMs).UTC(), MintTimeMs: hdr.MintTimeMs,
		EntryCount: hdr.EntryCount, EntriesRoot: hex.EncodeToString(hdr.EntriesRoot[:]),
		HistoryRoot: hex.EncodeToString(hdr.HistoryRoot[:]), ControlRoot: hex.EncodeToString(hdr.ControlRoot[:]),
		Header: hex.EncodeToString(hdr.Encode()), MasterSignature: hex.EncodeToString(sig),
		Validations: []proof.ValidationJSON{}, Accepted: len(ok), Rejected: len(vals) - len(ok),
		Quorum: s.c.Ledger.Network().Quorum,
	}
	b.Final = b.Accepted >= b.Quorum
	if s.c.Anchor != nil {
		b.Anchor = s.c.Anchor(h)
	}
	for _, v := range vals {
		b.Validations = append(b.Validations, proof.ValidationToJSON(v))
	}
	return b, nil
}

func (s *server) block(w http.ResponseWriter, r *http.Request) {
	h, err := strconv.ParseUint(r.PathValue("height"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "height must be a non-negative integer")
		return
	}
	if h >= s.c.Ledger.Height() {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no block at height %d (chain height is %d)", h, s.c.Ledger.Height()))
		return
	}
	b, err := s.blockJSON(h)
	if err != nil {
		s.internal(w, "read block", err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// blocks lists blocks newest first: ?before=HEIGHT&limit=N (default 20, max 100).
func (s *server) blocks(w http.ResponseWriter, r *http.Request) {
	top := s.c.Ledger.Height()
	before := top
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "before must be a non-negative integer")
			return
		}
		before = min(n, top)
	}
	limit, err := intParam(r, "limit", 20, 100)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := []*BlockJSON{}
	for h := before; h > 0 && len(out) < limit; h-- {
		b, err := s.blockJSON(h - 1)
		if err != nil {
			s.internal(w, "read block", err)
			return
		}
		out = append(out, b)
	}
	writeJSON(w, http.StatusOK, map[string]any{"blocks": out, "height": top})
}

func intParam(r *http.Request, name string, def, max int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, fmt.Errorf("%s must be an integer in 1..%d", name, max)
	}
	return n, nil
}

// EventJSON is an event with where and how it was logged.
type EventJSON struct {
	UID        string       `json:"uid"`
	Status     string       `json:"status"`            // pending, in_block, final
	Version    int          `json:"version,omitempty"` // see ledger.Found
	Event      *event.Event `json:"event,omitempty"`
	HubID      string       `json:"hub_id,omitempty"`
	ReceivedMs int64        `json:"received_ms,omitempty"`
	Tags       []TagJSON    `json:"tags,omitempty"`
	Height     *uint64      `json:"block_height,omitempty"`
	Index      *uint32      `json:"entry_index,omitempty"`
	BlockHash  string       `json:"block_hash,omitempty"`
	Digest     string       `json:"entry_digest,omitempty"`
	Entry      string       `json:"entry,omitempty"` // base64 entry bytes
}

// TagJSON is an analyzer tag.
type TagJSON struct {
	Analyzer string  `json:"analyzer"`
	Key      string  `json:"key,omitempty"`
	Label    string  `json:"label"`
	Model    string  `json:"model,omitempty"`
	Score    float64 `json:"score"`
	ScoreRaw int64   `json:"score_fixed"`
}

func tagsJSON(tags []event.Tag) []TagJSON {
	out := make([]TagJSON, len(tags))
	for i, t := range tags {
		out[i] = TagJSON{Analyzer: t.Analyzer, Key: t.Key, Label: t.Label, Model: t.Model, Score: float64(t.Score) / event.ScoreScale, ScoreRaw: t.Score}
	}
	return out
}

// eventParams name one event among those of a uid: an event's identity
// is its uid and device_uid, and a device that sent two contents under one
// uid through two hubs has two versions of it logged.
var eventParams = []string{"device", "version"}

// CandidateJSON is one of the events a uid names, when it names several.
type CandidateJSON struct {
	DeviceUID string `json:"device_uid"`
	Version   int    `json:"version"`
	Height    uint64 `json:"block_height"`
	Index     uint32 `json:"entry_index"`
	Href      string `json:"href"`
}

// locate finds the one event that the path's {uid} and the parameters
// device and version name, among those the request's token may read.
// Otherwise it answers the request itself and returns false: pending
// (through onPending) if the event waits in a pool, 404 if it is nowhere,
// and 300 with the candidates if several events match. An event outside a
// read token's namespaces is answered exactly as a missing one, so that a
// scoped token cannot even learn which uids exist elsewhere.
func (s *server) locate(w http.ResponseWriter, r *http.Request, onPending func()) (ledger.Found, bool) {
	uid, device := r.PathValue("uid"), r.URL.Query().Get("device")
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("version must be a positive integer, not %q", v))
			return ledger.Found{}, false
		}
		version = n
	}
	found, err := s.c.Ledger.Find(uid, device, version)
	if err != nil {
		s.internal(w, "locate event", err)
		return ledger.Found{}, false
	}
	a := requestAccess(r)
	found = slices.DeleteFunc(found, func(f ledger.Found) bool { return !a.All && !a.Allows(f.Entry.Event.Namespace) })
	switch {
	case len(found) == 1:
		return found[0], true
	case len(found) > 1:
		cs := make([]CandidateJSON, len(found))
		for i, f := range found {
			q := url.Values{"device": {f.Entry.Event.DeviceUID}, "version": {strconv.Itoa(f.Version)}}
			cs[i] = CandidateJSON{DeviceUID: f.Entry.Event.DeviceUID, Version: f.Version, Height: f.At.Height, Index: f.At.Index,
				Href: "/v1/events/" + url.PathEscape(uid) + "?" + q.Encode()}
		}
		writeJSON(w, http.StatusMultipleChoices, map[string]any{
			"error":      fmt.Sprintf("uid %q names %d events: name one with ?device= (and ?version=)", uid, len(found)),
			"candidates": cs,
		})
		return ledger.Found{}, false
	}
	// A read token learns nothing of pools: their events' namespaces are
	// not on the chain yet.
	if a.All && s.c.Pending != nil && s.c.Pending(uid, device) {
		onPending()
		return ledger.Found{}, false
	}
	what := fmt.Sprintf("uid %q", uid)
	if device != "" {
		what += " of device " + device
	}
	if version != 0 {
		what += fmt.Sprintf(", version %d", version)
	}
	writeError(w, http.StatusNotFound, "no event with "+what)
	return ledger.Found{}, false
}

func (s *server) event(w http.ResponseWriter, r *http.Request) {
	uid := r.PathValue("uid")
	f, ok := s.locate(w, r, func() { writeJSON(w, http.StatusOK, EventJSON{UID: uid, Status: "pending"}) })
	if !ok {
		return
	}
	loc, raw, en := f.At, f.Raw, f.Entry
	hdr, _, err := s.c.Ledger.Store().Header(loc.Height)
	if err != nil {
		s.internal(w, "read block", err)
		return
	}
	final, err := s.c.Ledger.Final(loc.Height)
	if err != nil {
		s.internal(w, "read validations", err)
		return
	}
	status := "in_block"
	if final {
		status = "final"
	}
	d := event.Digest(raw)
	bh := hdr.Hash()
	writeJSON(w, http.StatusOK, EventJSON{
		UID: uid, Status: status, Version: f.Version, Event: &en.Event, HubID: en.HubID, ReceivedMs: en.ReceivedMs,
		Tags: tagsJSON(en.Tags), Height: &loc.Height, Index: &loc.Index, BlockHash: hex.EncodeToString(bh[:]),
		Digest: hex.EncodeToString(d[:]), Entry: base64.StdEncoding.EncodeToString(raw),
	})
}

func (s *server) proof(w http.ResponseWriter, r *http.Request) {
	uid := r.PathValue("uid")
	f, ok := s.locate(w, r, func() {
		writeError(w, http.StatusConflict, fmt.Sprintf("event %q is pending: not in a block yet", uid))
	})
	if !ok {
		return
	}
	loc := f.At
	hdr, sig, err := s.c.Ledger.Store().Header(loc.Height)
	if err != nil {
		s.internal(w, "read block", err)
		return
	}
	_, vals, err := s.c.Ledger.Accepting(loc.Height)
	if err != nil {
		s.internal(w, "read validations", err)
		return
	}
	format := r.URL.Query().Get("format")
	switch format {
	case "", "json", "ots":
	case "entry": // the bytes the .ots file timestamps
		download(w, "application/octet-stream", uid+".entry", f.Raw)
		return
	default:
		writeError(w, http.StatusBadRequest, "format must be json, ots or entry")
		return
	}
	var anc *proof.Anchor
	if s.c.AnchorProof != nil {
		if anc, err = s.c.AnchorProof(loc.Height); err != nil {
			s.internal(w, "build the Bitcoin part of the proof", err)
			return
		}
	}
	// Only the entry's chunk of the block is read (store.EntryPath).
	entry, path, err := s.c.Ledger.Store().EntryPath(loc.Height, loc.Index, hdr.EntryCount)
	if err != nil {
		s.internal(w, "read event", err)
		return
	}
	b, err := proof.BuildPath(s.c.Ledger.Network().ID, hdr, sig, entry, uint64(loc.Index), path, vals, anc)
	if err != nil {
		s.internal(w, "build proof", err)
		return
	}
	if format == "ots" {
		if anc == nil {
			writeError(w, http.StatusConflict, fmt.Sprintf("block %d of event %q has no confirmed Bitcoin anchor yet (anchoring off, or not yet confirmed)", loc.Height, uid))
			return
		}
		data, err := proof.OTS(b)
		if err != nil {
			s.internal(w, "export OpenTimestamps proof", err)
			return
		}
		download(w, "application/vnd.opentimestamps.v1", uid+".entry.ots", data)
		return
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", uid+".proof.json"))
	writeJSON(w, http.StatusOK, b)
}

// download answers with a file to save.
func download(w http.ResponseWriter, contentType, name string, data []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	_, _ = w.Write(data)
}

// RowJSON is one search result.
type RowJSON struct {
	UID        string    `json:"uid"`
	DeviceUID  string    `json:"device_uid"`
	Namespace  string    `json:"namespace"`
	Timestamp  int64     `json:"timestamp"`
	ReceivedMs int64     `json:"received_ms"`
	HubID      string    `json:"hub_id"`
	Height     uint64    `json:"block_height"`
	Index      uint32    `json:"entry_index"`
	Digest     string    `json:"entry_digest"`
	Keys       []string  `json:"keys"`
	Tags       []string  `json:"tags"`
	MintTime   time.Time `json:"mint_time"`
}

// searchParams are the parameters search takes.
var searchParams = []string{"device", "namespace", "from", "to", "key", "tag", "q", "limit", "cursor"}

// search: ?device=&namespace=&from=&to=&key=&tag=&q=&limit=&cursor=
func (s *server) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var qq index.Query
	qq.DeviceUID, qq.Namespace, qq.Key, qq.Tag, qq.Text, qq.Cursor = q.Get("device"), q.Get("namespace"), q.Get("key"), q.Get("tag"), q.Get("q"), q.Get("cursor")
	qq.Namespaces = requestAccess(r).Scope()
	var err error
	if qq.From, err = msParam(q.Get("from")); err != nil {
		writeError(w, http.StatusBadRequest, "from: "+err.Error())
		return
	}
	if qq.To, err = msParam(q.Get("to")); err != nil {
		writeError(w, http.StatusBadRequest, "to: "+err.Error())
		return
	}
	if qq.Limit, err = intParam(r, "limit", index.DefaultLimit, index.MaxLimit); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rows, next, err := s.c.Ledger.Search(r.Context(), qq)
	if errors.Is(err, index.ErrBadQuery) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.internal(w, "search", err)
		return
	}
	out := make([]RowJSON, len(rows))
	for i, row := range rows {
		out[i] = RowJSON{
			UID: row.UID, DeviceUID: row.DeviceUID, Namespace: row.Namespace, Timestamp: row.Timestamp,
			ReceivedMs: row.ReceivedMs, HubID: row.HubID, Height: row.Height, Index: row.Index,
			Digest: hex.EncodeToString(row.Digest[:]), Keys: nonNil(row.Keys), Tags: nonNil(row.Tags),
			MintTime: time.UnixMilli(row.MintTimeMs).UTC(),
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out, "next": next})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// msParam accepts Unix milliseconds or an RFC 3339 time.
func msParam(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return n, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return 0, fmt.Errorf("want Unix milliseconds or an RFC 3339 time, got %q", v)
	}
	return t.UnixMilli(), nil
}

// ConfigJSON is an analyzer configuration recorded on the chain.
type ConfigJSON struct {
	Height uint64          `json:"height"` // the block that carries it; it decides the tags from this block on
	Config json.RawMessage `json:"config"`
}

// analyzers shows the configuration in force, its history, and one
// waiting for the next block.
func (s *server) analyzers(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"current": nil, "history": []ConfigJSON{}, "pending": nil}
	changes := s.c.Ledger.Configs()
	hist := make([]ConfigJSON, len(changes))
	for i, c := range changes {
		hist[i] = ConfigJSON{Height: c.Height, Config: c.Raw}
	}
	out["history"] = hist
	if len(hist) > 0 {
		out["current"] = hist[len(hist)-1]
	}
	if s.c.Master != nil {
		p, err := s.c.Master.PendingAnalyzers()
		if err != nil {
			s.internal(w, "read pending config", err)
			return
		}
		if p != nil {
			out["pending"] = json.RawMessage(p)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// setAnalyzers queues a new analyzer configuration (operator token).
func (s *server) setAnalyzers(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	if err := s.c.Master.SetAnalyzers(body); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{
		"pending": json.RawMessage(body),
		"message": fmt.Sprintf("queued: the next block (height %d or later) records it, and it decides the tags from that block on", s.c.Ledger.Height()),
	})
}

// enrolHub queues a hub's enrolment (operator token): the next block
// records it, and the hub takes part from the block after.
func (s *server) enrolHub(w http.ResponseWriter, r *http.Request) {
	var e chain.Enrolment
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		writeError(w, http.StatusBadRequest, "body must be {\"id\": \"...\", \"public_key\": \"<64 hex>\"}: "+err.Error())
		return
	}
	if err := s.c.Master.EnrolHub(e); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{
		"pending": e,
		"message": fmt.Sprintf("queued: the next block (height %d or later) enrols %s; it may submit and validate from the block after; export network.json from GET /v1/network once it is recorded", s.c.Ledger.Height(), e.ID),
	})
}
