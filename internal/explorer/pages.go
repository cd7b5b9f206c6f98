package explorer

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"cissan/internal/access"
	"cissan/internal/api"
	"cissan/internal/chain"
	"cissan/internal/event"
	"cissan/internal/index"
	"cissan/internal/ledger"
	"cissan/internal/registry"
)

// dashBlocks is how many of the newest blocks the dashboard lists.
const dashBlocks = 8

// blockRow is a block in a list.
type blockRow struct {
	Height   uint64          `json:"height"`
	Hash     string          `json:"hash"`
	MintTime time.Time       `json:"mint_time"`
	Entries  uint64          `json:"entries"`
	Accepted int             `json:"accepted"`
	Rejected int             `json:"rejected"`
	Quorum   int             `json:"quorum"`
	Final    bool            `json:"final"`
	Anchor   *api.AnchorJSON `json:"anchor,omitempty"`
}

func (e *Explorer) blockRow(h uint64) (blockRow, *chain.Header, []chain.Validation, error) {
	led := e.c.Ledger
	hdr, _, err := led.Store().Header(h)
	if err != nil {
		return blockRow{}, nil, nil, fmt.Errorf("read block %d: %w", h, err)
	}
	ok, vals, err := led.Accepting(h)
	if err != nil {
		return blockRow{}, nil, nil, fmt.Errorf("read validations of block %d: %w", h, err)
	}
	hash := hdr.Hash()
	b := blockRow{
		Height: h, Hash: hex.EncodeToString(hash[:]), MintTime: time.UnixMilli(hdr.MintTimeMs).UTC(),
		Entries: hdr.EntryCount, Accepted: len(ok), Rejected: len(vals) - len(ok), Quorum: led.Network().Quorum,
	}
	b.Final = b.Accepted >= b.Quorum
	if e.c.Anchor != nil {
		b.Anchor = e.c.Anchor(h)
	}
	return b, hdr, vals, nil
}

func (e *Explorer) newestBlocks(before uint64, n int) ([]blockRow, error) {
	out := make([]blockRow, 0, n)
	for h := before; h > 0 && len(out) < n; h-- {
		b, _, _, err := e.blockRow(h - 1)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

type dashData struct {
	Snap       Snapshot
	Series     []Point
	Blocks     []blockRow
	Anchoring  bool
	HubCount   int
	Quorum     int
	Validators []string
}

func (e *Explorer) dashboard(w http.ResponseWriter, r *http.Request) {
	snap, series := e.live.state()
	if snap.Time.IsZero() {
		// Not sampled yet: take a sample now, without waiting for the
		// event count, which a new explorer takes a pass over the headers
		// to make (Run's first sample does it).
		e.live.sample(r.Context(), time.Now(), 0)
		snap, series = e.live.state()
	}
	d := dashData{Snap: snap, Series: series, Blocks: snap.Blocks, Anchoring: e.c.Anchor != nil || snap.Anchor != nil}
	for _, h := range e.c.Ledger.Network().Hubs {
		d.Validators = append(d.Validators, h.ID)
	}
	d.HubCount, d.Quorum = len(d.Validators), e.c.Ledger.Network().Quorum
	e.render(w, r, http.StatusOK, "dashboard", "Dashboard", "dashboard", e.accessOf(r), d)
}

type blocksData struct {
	Blocks     []blockRow
	Height     uint64
	Older      uint64 // "before" of the next page; 0 when none
	Newer      uint64 // "before" of the previous page; 0 when this is the newest
	Anchoring  bool
	FirstShown uint64
}

// blocksPerPage is the length of the blocks list.
const blocksPerPage = 25

func (e *Explorer) blocks(w http.ResponseWriter, r *http.Request) {
	top := e.c.Ledger.Height()
	before := top
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			e.fail(w, r, http.StatusBadRequest, "Bad page", "before must be a block height.")
			return
		}
		before = min(n, top)
	}
	rows, err := e.newestBlocks(before, blocksPerPage)
	if err != nil {
		e.fail(w, r, http.StatusInternalServerError, "Could not read the chain", err.Error())
		return
	}
	d := blocksData{Blocks: rows, Height: top, Anchoring: e.c.Anchor != nil}
	if before > blocksPerPage {
		d.Older = before - blocksPerPage
	}
	if before < top {
		d.Newer = min(top, before+blocksPerPage)
	}
	e.render(w, r, http.StatusOK, "blocks", "Blocks", "blocks", e.accessOf(r), d)
}

// entryRow is one entry of a block, as a token holder sees it.
type entryRow struct {
	Index     uint32
	UID       string
	DeviceUID string
	Namespace string
	Digest    string
	Items     int
	Tags      []string
}

type blockData struct {
	Block       blockRow
	Header      *chain.Header
	HeaderHex   string
	PrevHash    string
	EntriesRoot string
	HistoryRoot string
	ControlRoot string
	Signature   string
	Validations []validationRow
	Anchoring   bool
	// Entries is the page of entries the visitor may see; Hidden counts the
	// others on the page (other namespaces).
	Entries   []entryRow
	Hidden    int
	From      uint32
	Next      uint32 // first index of the next page; 0 if none
	Prev      uint32
	HasPrev   bool
	PageEnd   uint64
	ShowItems bool
	HasNext   bool // a block above this one exists
}

type validationRow struct {
	HubID     string
	Verdict   string
	Reason    string
	Signature string
}

// entriesPerPage is how many entries a block page decodes at a time.
const entriesPerPage = 100

func (e *Explorer) block(w http.ResponseWriter, r *http.Request) {
	h, err := strconv.ParseUint(r.PathValue("height"), 10, 64)
	if err != nil {
		e.fail(w, r, http.StatusBadRequest, "Bad height", "A block height is a non-negative integer.")
		return
	}
	if h >= e.c.Ledger.Height() {
		e.fail(w, r, http.StatusNotFound, "No such block", fmt.Sprintf("There is no block at height %d yet (the chain has %d).", h, e.c.Ledger.Height()))
		return
	}
	row, hdr, vals, err := e.blockRow(h)
	if err != nil {
		e.fail(w, r, http.StatusInternalServerError, "Could not read the block", err.Error())
		return
	}
	_, sig, err := e.c.Ledger.Store().Header(h)
	if err != nil {
		e.fail(w, r, http.StatusInternalServerError, "Could not read the block", err.Error())
		return
	}
	d := blockData{
		Block: row, Header: hdr, HeaderHex: hex.EncodeToString(hdr.Encode()), PrevHash: hex.EncodeToString(hdr.Prev[:]),
		EntriesRoot: hex.EncodeToString(hdr.EntriesRoot[:]), HistoryRoot: hex.EncodeToString(hdr.HistoryRoot[:]),
		ControlRoot: hex.EncodeToString(hdr.ControlRoot[:]), Signature: hex.EncodeToString(sig), Anchoring: e.c.Anchor != nil,
		HasNext: h+1 < e.c.Ledger.Height(),
	}
	for _, v := range vals {
		d.Validations = append(d.Validations, validationRow{HubID: v.HubID, Verdict: v.Verdict.String(), Reason: v.Reason, Signature: hex.EncodeToString(v.Signature)})
	}
	a := e.accessOf(r)
	if a.Granted() && hdr.EntryCount > 0 {
		d.ShowItems = true
		from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 32)
		if from >= hdr.EntryCount {
			from = 0
		}
		d.From = uint32(from)
		end := min(hdr.EntryCount, from+entriesPerPage)
		d.PageEnd = end
		if end < hdr.EntryCount {
			d.Next = uint32(end)
		}
		if from > 0 {
			d.HasPrev, d.Prev = true, uint32(from-min(from, entriesPerPage))
		}
		for i := uint32(from); i < uint32(end); i++ {
			raw, err := e.c.Ledger.Store().Entry(h, i)
			if err != nil {
				e.fail(w, r, http.StatusInternalServerError, "Could not read the block", err.Error())
				return
			}
			en, err := event.DecodeEntry(raw, e.c.Ledger.Limits())
			if err != nil {
				e.fail(w, r, http.StatusInternalServerError, "Could not decode an entry", err.Error())
				return
			}
			if !a.Allows(en.Event.Namespace) {
				d.Hidden++
				continue
			}
			dg := event.Digest(raw)
			er := entryRow{Index: i, UID: en.Event.UID, DeviceUID: en.Event.DeviceUID, Namespace: en.Event.Namespace,
				Digest: hex.EncodeToString(dg[:]), Items: len(en.Event.Items)}
			for _, t := range en.Tags {
				er.Tags = append(er.Tags, t.Label)
			}
			d.Entries = append(d.Entries, er)
		}
	}
	e.render(w, r, http.StatusOK, "block", fmt.Sprintf("Block %d", h), "blocks", a, d)
}

// itemRow is one item of an event, rendered for people.
type itemRow struct {
	Key, Value, Kind string
}

type tagRow struct {
	Analyzer, Key, Label, Model string
	Score                       float64
}

type eventData struct {
	UID        string
	Status     string
	Event      *event.Event
	Items      []itemRow
	Tags       []tagRow
	HubID      string
	ReceivedMs int64
	Height     uint64
	Index      uint32
	BlockHash  string
	Digest     string
	JSON       string
	ProofURL   string
	OTSURL     string
	Anchor     *api.AnchorJSON
	Anchoring  bool
	Version    int         // see ledger.Found
	Candidates []candidate // when the uid names several events
}

// candidate is one of several events a uid names.
type candidate struct {
	DeviceUID string
	Version   int
	Height    uint64
	Href      string
}

func (e *Explorer) event(w http.ResponseWriter, r *http.Request) {
	a := e.accessOf(r)
	if !a.Granted() {
		e.needToken(w, r, "Events")
		return
	}
	uid, device := r.PathValue("uid"), r.URL.Query().Get("device")
	version, _ := strconv.Atoi(r.URL.Query().Get("version"))
	notFound := func() {
		e.fail(w, r, http.StatusNotFound, "No such event", "No event with this uid is visible to you.")
	}
	found, err := e.c.Ledger.Find(uid, device, max(version, 0))
	if err != nil {
		e.fail(w, r, http.StatusInternalServerError, "Could not find the event", err.Error())
		return
	}
	found = slices.DeleteFunc(found, func(f ledger.Found) bool { return !a.Allows(f.Entry.Event.Namespace) })
	switch {
	case len(found) == 0 && a.All && e.c.Pending != nil && e.c.Pending(uid, device):
		// A pending event's namespace is not on the chain yet, so only
		// the operator learns that it waits.
		e.render(w, r, http.StatusOK, "event", "Event", "events", a, eventData{UID: uid, Status: "pending"})
		return
	case len(found) == 0:
		notFound()
		return
	case len(found) > 1:
		// One uid may name events of several devices, or two versions
		// of one device's event (ledger.Found).
		d := eventData{UID: uid, Status: "ambiguous"}
		for _, f := range found {
			q := url.Values{"device": {f.Entry.Event.DeviceUID}, "version": {strconv.Itoa(f.Version)}}
			d.Candidates = append(d.Candidates, candidate{DeviceUID: f.Entry.Event.DeviceUID, Version: f.Version,
				Height: f.At.Height, Href: "/events/" + url.PathEscape(uid) + "?" + q.Encode()})
		}
		e.render(w, r, http.StatusMultipleChoices, "event", "Event "+uid, "events", a, d)
		return
	}
	f := found[0]
	loc, raw, en := f.At, f.Raw, f.Entry
	final, err := e.c.Ledger.Final(loc.Height)
	if err != nil {
		e.fail(w, r, http.StatusInternalServerError, "Could not read validations", err.Error())
		return
	}
	hdr, _, err := e.c.Ledger.Store().Header(loc.Height)
	if err != nil {
		e.fail(w, r, http.StatusInternalServerError, "Could not read the block", err.Error())
		return
	}
	bh, dg := hdr.Hash(), event.Digest(raw)
	js, _ := en.Event.MarshalJSON()
	d := eventData{
		UID: uid, Status: "in_block", Event: &en.Event, HubID: en.HubID, ReceivedMs: en.ReceivedMs,
		Height: loc.Height, Index: loc.Index, BlockHash: hex.EncodeToString(bh[:]), Digest: hex.EncodeToString(dg[:]),
		JSON: string(js), Anchoring: e.c.Anchor != nil, Version: f.Version,
	}
	q := url.Values{"device": {en.Event.DeviceUID}, "version": {strconv.Itoa(f.Version)}}
	d.ProofURL = "/v1/events/" + url.PathEscape(uid) + "/proof?" + q.Encode()
	d.OTSURL = d.ProofURL + "&format=ots"
	if final {
		d.Status = "final"
	}
	if e.c.Anchor != nil {
		d.Anchor = e.c.Anchor(loc.Height)
	}
	for _, it := range en.Event.Items {
		d.Items = append(d.Items, itemRow{Key: it.Key, Value: valueText(it.Value), Kind: kindName(it.Value.Kind)})
	}
	for _, t := range en.Tags {
		d.Tags = append(d.Tags, tagRow{Analyzer: t.Analyzer, Key: t.Key, Label: t.Label, Model: t.Model, Score: float64(t.Score) / event.ScoreScale})
	}
	e.render(w, r, http.StatusOK, "event", "Event "+uid, "events", a, d)
}

func kindName(k event.Kind) string {
	switch k {
	case event.KindNumber:
		return "number"
	case event.KindString:
		return "string"
	case event.KindBool:
		return "bool"
	case event.KindArray:
		return "array"
	}
	return "?"
}

func valueText(v event.Value) string {
	switch v.Kind {
	case event.KindNumber:
		return strconv.FormatFloat(v.Num, 'g', -1, 64)
	case event.KindString:
		b, _ := json.Marshal(v.Str)
		return string(b)
	case event.KindBool:
		return strconv.FormatBool(v.Bool)
	case event.KindArray:
		parts := make([]string, len(v.Array))
		for i, x := range v.Array {
			parts[i] = valueText(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return "?"
}

type searchForm struct {
	Device, Namespace, From, To, Key, Tag, Q string
	Limit                                    int
}

type searchData struct {
	Form    searchForm
	Rows    []index.Row
	Next    string // URL of the next page, "" on the last
	First   string // URL of the first page, when not on it
	Error   string
	Scope   []string
	Asked   bool
	Page    int
	NextNum int
}

// searchLimit is the page size of the search page.
const searchLimit = 50

func (e *Explorer) search(w http.ResponseWriter, r *http.Request) {
	a := e.accessOf(r)
	if !a.Granted() {
		e.needToken(w, r, "Events")
		return
	}
	q := r.URL.Query()
	f := searchForm{Device: q.Get("device"), Namespace: q.Get("namespace"), From: q.Get("from"), To: q.Get("to"),
		Key: q.Get("key"), Tag: q.Get("tag"), Q: q.Get("q")}
	d := searchData{Form: f, Scope: a.Namespaces}
	d.Page, _ = strconv.Atoi(q.Get("page"))
	d.Page = max(d.Page, 1)
	limit := searchLimit
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n >= 1 && n <= index.MaxLimit {
		limit = n
	}
	qq := index.Query{DeviceUID: f.Device, Namespace: f.Namespace, Key: f.Key, Tag: f.Tag, Text: f.Q,
		Cursor: q.Get("cursor"), Limit: limit, Namespaces: a.Scope()}
	var err error
	if qq.From, err = timeParam(f.From); err != nil {
		d.Error = "From: " + err.Error()
	}
	if qq.To, err = timeParam(f.To); err != nil {
		d.Error = "To: " + err.Error()
	}
	if d.Error == "" {
		rows, next, err := e.c.Ledger.Search(r.Context(), qq)
		if err != nil {
			d.Error = err.Error()
		}
		d.Rows = rows
		if next != "" {
			nq := url.Values{}
			for k, v := range q {
				if k != "cursor" && k != "page" {
					nq[k] = v
				}
			}
			nq.Set("cursor", next)
			nq.Set("page", strconv.Itoa(d.Page+1))
			d.Next = "/events?" + nq.Encode()
			d.NextNum = d.Page + 1
		}
		if qq.Cursor != "" {
			fq := url.Values{}
			for k, v := range q {
				if k != "cursor" && k != "page" {
					fq[k] = v
				}
			}
			d.First = "/events?" + fq.Encode()
		}
	}
	code := http.StatusOK
	if d.Error != "" {
		code = http.StatusBadRequest
	}
	e.render(w, r, code, "search", "Events", "events", a, d)
}

// timeParam reads a time from the search form: a datetime-local value
// (taken as UTC, as the page says), RFC 3339, or Unix ms.
func timeParam(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return n, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("want a date and time (UTC), RFC 3339 or Unix milliseconds, not %q", v)
}

type devicesData struct {
	Devices   []registry.Device
	Namespace string
	Status    string
	Next      string
	Counts    []Count
}

// devicesPerPage is the length of the devices list.
const devicesPerPage = 50

// operatorOnly answers for pages about devices: they list device ids and
// namespaces across the whole registry, which only the operator may see.
func (e *Explorer) operatorOnly(w http.ResponseWriter, r *http.Request) (access.Access, bool) {
	a := e.accessOf(r)
	switch {
	case !a.Granted():
		e.needToken(w, r, "Devices")
		return a, false
	case !a.All:
		e.fail(w, r, http.StatusForbidden, "Operators only", "Devices are shown to the operator token only; a read token sees the events of its namespaces.")
		return a, false
	case e.c.Registry == nil:
		e.fail(w, r, http.StatusNotFound, "No registry here", "The device registry does not run on this node.")
		return a, false
	}
	return a, true
}

func (e *Explorer) devices(w http.ResponseWriter, r *http.Request) {
	a, ok := e.operatorOnly(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	d := devicesData{Namespace: q.Get("namespace"), Status: q.Get("status")}
	devs, err := e.c.Registry.List(r.Context(), registry.ListFilter{
		Namespace: d.Namespace, Status: registry.Status(d.Status), After: q.Get("after"), Limit: devicesPerPage + 1,
	})
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, registry.ErrInvalid) {
			code = http.StatusBadRequest
		}
		e.fail(w, r, code, "Could not list devices", err.Error())
		return
	}
	if len(devs) > devicesPerPage {
		devs = devs[:devicesPerPage]
		nq := url.Values{"after": {devs[len(devs)-1].UID}}
		if d.Namespace != "" {
			nq.Set("namespace", d.Namespace)
		}
		if d.Status != "" {
			nq.Set("status", d.Status)
		}
		d.Next = "/devices?" + nq.Encode()
	}
	d.Devices = devs
	snap, _ := e.live.state()
	d.Counts = snap.Devices
	e.render(w, r, http.StatusOK, "devices", "Devices", "devices", a, d)
}

type deviceData struct {
	Device  registry.Device
	Chart   *chart
	Recent  []deviceEvent
	Shown   int
	Flagged int
}

type deviceEvent struct {
	UID       string
	Timestamp int64
	Height    uint64
	Summary   string
	Tags      []string
}

// deviceSeries is how many of a device's newest events its chart plots.
const deviceSeries = 500

func (e *Explorer) device(w http.ResponseWriter, r *http.Request) {
	a, ok := e.operatorOnly(w, r)
	if !ok {
		return
	}
	dev, err := e.c.Registry.Get(r.Context(), r.PathValue("uid"))
	if errors.Is(err, registry.ErrNotFound) {
		e.fail(w, r, http.StatusNotFound, "No such device", "No device is registered under this uid.")
		return
	}
	if err != nil {
		e.fail(w, r, http.StatusInternalServerError, "Could not read the device", err.Error())
		return
	}
	d, err := e.deviceHistory(r.Context(), dev)
	if err != nil {
		e.fail(w, r, http.StatusInternalServerError, "Could not read the device's events", err.Error())
		return
	}
	e.render(w, r, http.StatusOK, "device", "Device "+dev.UID, "devices", a, d)
}

// deviceHistory reads the device's newest events from the chain (the index
// finds them, the store gives their values) and plots their numbers.
func (e *Explorer) deviceHistory(ctx context.Context, dev registry.Device) (deviceData, error) {
	d := deviceData{Device: dev}
	refs, _, err := e.c.Ledger.Index().Search(ctx, index.Query{DeviceUID: dev.UID, Limit: deviceSeries})
	if err != nil {
		return d, err
	}
	var pts []chartInput
	for i := len(refs) - 1; i >= 0; i-- { // oldest first
		ref := refs[i]
		raw, err := e.c.Ledger.Store().Entry(ref.Height, ref.Index)
		if err != nil {
			return d, err
		}
		en, err := event.DecodeEntry(raw, e.c.Ledger.Limits())
		if err != nil {
			return d, err
		}
		if en.Event.DeviceUID != dev.UID {
			return d, fmt.Errorf("block %d entry %d: %w: found for device %q, but logged by %q; reindex (cissan reindex)",
				ref.Height, ref.Index, index.ErrCorrupt, dev.UID, en.Event.DeviceUID)
		}
		in := chartInput{T: en.Event.Timestamp, UID: en.Event.UID, Values: map[string]float64{}}
		var parts []string
		for _, it := range en.Event.Items {
			if it.Value.Kind == event.KindNumber {
				in.Values[it.Key] = it.Value.Num
			}
			if len(parts) < 4 {
				parts = append(parts, it.Key+"="+valueText(it.Value))
			}
		}
		for _, t := range en.Tags {
			in.Tags = append(in.Tags, t.Label)
			if t.Key != "" {
				in.TagKeys = append(in.TagKeys, t.Key)
			}
		}
		if len(in.Tags) > 0 {
			d.Flagged++
		}
		pts = append(pts, in)
		if i < 20 {
			d.Recent = append([]deviceEvent{{UID: en.Event.UID, Timestamp: en.Event.Timestamp, Height: ref.Height,
				Summary: strings.Join(parts, ", "), Tags: in.Tags}}, d.Recent...)
		}
	}
	d.Shown = len(pts)
	d.Chart = buildChart(pts)
	return d, nil
}

func (e *Explorer) verify(w http.ResponseWriter, r *http.Request) {
	e.render(w, r, http.StatusOK, "verify", "Verify a proof", "verify", e.accessOf(r), nil)
}
