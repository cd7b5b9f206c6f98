package explorer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// seriesLen is how many samples the dashboard's charts span: five minutes
// at one sample a second.
const seriesLen = 300

// Point is one sample on the dashboard's charts.
type Point struct {
	T      int64   `json:"t"`      // Unix ms
	Rate   float64 `json:"rate"`   // events per second taken in by the hubs (or logged, without metrics)
	Height uint64  `json:"height"` // the chain's height
}

// NodeState is one node on the dashboard.
type NodeState struct {
	ID       string    `json:"id"`
	Role     string    `json:"role"`
	Height   uint64    `json:"height"`
	Lag      uint64    `json:"lag"` // blocks behind the master
	Pool     int64     `json:"pool"`
	Advanced time.Time `json:"advanced"` // when its height last grew (this process's view)
}

// Count is a labelled figure (rejections by reason, devices by status).
type Count struct {
	Label string  `json:"label"`
	Value float64 `json:"value"`
}

// Snapshot is the dashboard's state: everything on it comes from here and
// from the newest few headers, so rendering it costs the same at any size.
type Snapshot struct {
	Time         time.Time   `json:"time"`
	Height       uint64      `json:"height"`
	FinalHeight  uint64      `json:"final_height"`
	FinalityLag  uint64      `json:"finality_lag"` // blocks minted but not yet final
	Events       int64       `json:"events"`       // entries in the chain; -1 while a new explorer counts them
	Tagged       int64       `json:"tagged"`
	Accepted     float64     `json:"accepted"` // events the hubs acknowledged (metrics)
	Rate         float64     `json:"rate"`
	RateKind     string      `json:"rate_kind"`
	HeadMint     time.Time   `json:"head_mint"`
	Nodes        []NodeState `json:"nodes"`
	Rejections   []Count     `json:"rejections"`
	RejectedSum  float64     `json:"rejected_sum"`
	BlockRejects float64     `json:"block_rejects"` // blocks hubs refused to countersign
	Devices      []Count     `json:"devices"`
	Anchor       *AnchorView `json:"anchor,omitempty"`
	HasMetrics   bool        `json:"has_metrics"`
	Blocks       []blockRow  `json:"blocks"` // the newest few, newest first
}

type sampler struct {
	c       *Config
	countMu sync.Mutex // guards counted and events
	// newest reads the newest few blocks' rows.
	newest func(top uint64) ([]blockRow, error)

	mu       sync.RWMutex
	snap     Snapshot
	series   []Point
	counted  uint64 // events are summed over headers below this height
	events   int64
	advanced map[string]time.Time
	heights  map[string]uint64
	subs     map[chan []byte]struct{}
	// done closes when run returns, ending every live stream: a server's
	// Shutdown waits for open requests, and a stream never ends by itself.
	done chan struct{}
}

func newSampler(c *Config) *sampler {
	return &sampler{c: c, advanced: map[string]time.Time{}, heights: map[string]uint64{}, subs: map[chan []byte]struct{}{}, done: make(chan struct{})}
}

func (s *sampler) run(ctx context.Context, every time.Duration) {
	defer close(s.done)
	s.sample(ctx, time.Now(), -1)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.sample(ctx, now, -1)
		}
	}
}

// state returns the snapshot and a copy of the series.
func (s *sampler) state() (Snapshot, []Point) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snap, append([]Point(nil), s.series...)
}

// count brings the event count up to height by adding the entry_count of
// every header not yet counted, reading at most budget headers (all if
// budget < 0). It returns the count and whether it is complete; with a
// budget of 0 it does not wait for a count in progress. Only a new
// explorer reads many headers: after that, each sample reads the few
// blocks minted since the last.
func (s *sampler) count(height uint64, budget int) (int64, bool) {
	if budget == 0 {
		if !s.countMu.TryLock() {
			return 0, false
		}
	} else {
		s.countMu.Lock()
	}
	defer s.countMu.Unlock()
	for ; s.counted < height && budget != 0; budget-- {
		hdr, _, err := s.c.Ledger.Store().Header(s.counted)
		if err != nil {
			s.c.Log.Warn("explorer: read header", "height", s.counted, "err", err)
			break
		}
		s.events += int64(hdr.EntryCount)
		s.counted++
	}
	return s.events, s.counted >= height
}

// sample reads counters and heights, adds a point, and pushes it to every
// live dashboard. budget bounds the headers read to count events (see
// count); an incomplete count is shown as unknown (-1).
func (s *sampler) sample(ctx context.Context, now time.Time, budget int) {
	led := s.c.Ledger
	height := led.Height()
	events, counted := s.count(height, budget)
	if !counted {
		events = -1
	}
	s.mu.RLock()
	prev := s.snap
	s.mu.RUnlock()

	snap := Snapshot{Time: now.UTC(), Height: height, FinalHeight: led.FinalHeight(), Events: events, Tagged: led.Tagged()}
	snap.FinalityLag = height - min(height, snap.FinalHeight)
	if height > 0 {
		if hdr, _, err := led.Store().Header(height - 1); err == nil {
			snap.HeadMint = time.UnixMilli(hdr.MintTimeMs).UTC()
		}
	}
	if s.c.Metrics != nil {
		s.readMetrics(&snap)
	}
	var status map[string]any
	if s.c.Status != nil {
		status = s.c.Status(ctx)
	}
	if s.newest != nil {
		if rows, err := s.newest(height); err == nil {
			snap.Blocks = rows
		} else {
			s.c.Log.Warn("explorer: read newest blocks", "err", err)
		}
	}
	snap.Nodes = s.nodes(status, height, now)
	snap.Devices = deviceCounts(status["devices"])
	if s.c.AnchorStatus != nil {
		snap.Anchor = anchorView(s.c.AnchorStatus(ctx))
	} else if a, ok := status["anchor"]; ok {
		snap.Anchor = anchorView(a)
	}

	// The rate: hubs' acknowledgements when metrics are there (smooth),
	// else entries logged (which arrive a block at a time).
	dt := now.Sub(prev.Time).Seconds()
	switch {
	case prev.Time.IsZero() || dt <= 0:
	case snap.HasMetrics:
		snap.Rate = max(0, (snap.Accepted-prev.Accepted)/dt)
	case snap.Events < 0 || prev.Events < 0:
	default:
		snap.Rate = max(0, float64(snap.Events-prev.Events)/dt)
	}
	snap.RateKind = "logged"
	if snap.HasMetrics {
		snap.RateKind = "acknowledged by hubs"
	}
	p := Point{T: now.UnixMilli(), Rate: snap.Rate, Height: height}

	s.mu.Lock()
	s.snap = snap
	s.series = append(s.series, p)
	if len(s.series) > seriesLen {
		s.series = append(s.series[:0], s.series[len(s.series)-seriesLen:]...)
	}
	msg, err := json.Marshal(liveMsg{Snapshot: snap, Point: &p})
	if err == nil {
		for ch := range s.subs {
			select {
			case ch <- msg:
			default: // a slow dashboard skips a sample rather than hold up the others
			}
		}
	}
	s.mu.Unlock()
}

func (s *sampler) nodes(status map[string]any, masterHeight uint64, now time.Time) []NodeState {
	raw, _ := status["nodes"].([]map[string]any)
	out := make([]NodeState, 0, len(raw))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range raw {
		n := NodeState{ID: fmt.Sprint(m["id"]), Role: fmt.Sprint(m["role"]), Height: toU64(m["height"]), Pool: int64(toU64(m["pool"]))}
		n.Lag = masterHeight - min(masterHeight, n.Height)
		if h, seen := s.heights[n.ID]; !seen || n.Height > h {
			s.heights[n.ID] = n.Height
			s.advanced[n.ID] = now
		}
		n.Advanced = s.advanced[n.ID]
		out = append(out, n)
	}
	return out
}

func toU64(v any) uint64 {
	switch x := v.(type) {
	case uint64:
		return x
	case int:
		return uint64(max(x, 0))
	case int64:
		return uint64(max(x, 0))
	case float64:
		return uint64(max(x, 0))
	}
	return 0
}

// deviceCounts reads the registry's counts by status, whatever map type
// the status hook used.
func deviceCounts(v any) []Count {
	out := []Count{}
	add := func(k string, n float64) { out = append(out, Count{k, n}) }
	switch m := v.(type) {
	case map[string]int:
		for k, n := range m {
			add(k, float64(n))
		}
	case map[string]any:
		for k, n := range m {
			add(k, float64(toU64(n)))
		}
	default:
		// map[registry.Status]int and the like: through JSON.
		if b, err := json.Marshal(v); err == nil {
			var mm map[string]float64
			if json.Unmarshal(b, &mm) == nil {
				for k, n := range mm {
					add(k, n)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out
}

// readMetrics takes the ingest and rejection counters from the node's
// Prometheus registry.
func (s *sampler) readMetrics(snap *Snapshot) {
	fams, err := s.c.Metrics.Registry().Gather()
	if err != nil && len(fams) == 0 {
		return
	}
	snap.HasMetrics = true
	byReason := map[string]float64{}
	for _, f := range fams {
		switch f.GetName() {
		case "cissan_events_accepted_total":
			for _, m := range f.GetMetric() {
				snap.Accepted += m.GetCounter().GetValue()
			}
		case "cissan_events_rejected_total":
			for _, m := range f.GetMetric() {
				byReason[label(m, "reason")] += m.GetCounter().GetValue()
			}
		case "cissan_blocks_validated_total":
			for _, m := range f.GetMetric() {
				if label(m, "verdict") == "reject" {
					snap.BlockRejects += m.GetCounter().GetValue()
				}
			}
		}
	}
	for k, v := range byReason {
		snap.Rejections = append(snap.Rejections, Count{k, v})
		snap.RejectedSum += v
	}
	sort.Slice(snap.Rejections, func(i, j int) bool { return snap.Rejections[i].Label < snap.Rejections[j].Label })
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// liveMsg is one Server-Sent Event: the snapshot, and either the new point
// or (first message) the whole series.
type liveMsg struct {
	Snapshot Snapshot `json:"snapshot"`
	Point    *Point   `json:"point,omitempty"`
	Series   []Point  `json:"series,omitempty"`
}

// liveStream pushes every sample to a dashboard as a Server-Sent Event.
// The samples hold counts and heights only, so the stream is public.
func (e *Explorer) liveStream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	s := e.live
	ch := make(chan []byte, 8)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	first, _ := json.Marshal(liveMsg{Snapshot: s.snap, Series: s.series})
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	fmt.Fprintf(w, "retry: 2000\nevent: sample\ndata: %s\n\n", first)
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case msg := <-ch:
			if _, err := fmt.Fprintf(w, "event: sample\ndata: %s\n\n", msg); err != nil {
				return
			}
			fl.Flush()
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// AnchorView is the anchoring state the dashboard shows, read from
// whatever the status hook returns for "anchor" (through JSON, so the
// anchoring service's own type need not be known here).
type AnchorView struct {
	State         string   `json:"state"`
	Address       string   `json:"address,omitempty"`
	BalanceSat    *int64   `json:"balance_sat,omitempty"`
	Anchors       *int64   `json:"anchors,omitempty"`
	LastState     string   `json:"last_state,omitempty"`
	LastHeight    *uint64  `json:"last_height,omitempty"`
	LastTxID      string   `json:"last_txid,omitempty"`
	NextAnchor    string   `json:"next_anchor,omitempty"`
	ConfirmedUpTo *uint64  `json:"confirmed_through_height,omitempty"`
	DaysLeft      *float64 `json:"days_left,omitempty"`
	LowFunds      bool     `json:"low_funds,omitempty"`
	Error         string   `json:"error,omitempty"`
}

func anchorView(v any) *AnchorView {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var m struct {
		State         string   `json:"state"`
		Address       string   `json:"address"`
		BalanceSat    *int64   `json:"balance_sat"`
		Anchors       *int64   `json:"anchors"`
		Next          any      `json:"next_anchor"`
		ConfirmedUpTo *uint64  `json:"confirmed_through_height"`
		DaysLeft      *float64 `json:"days_left"`
		LowFunds      bool     `json:"low_funds"`
		Error         string   `json:"error"`
		Last          *struct {
			State          string  `json:"state"`
			AnchoredHeight *uint64 `json:"anchored_height"`
			TxID           string  `json:"txid"`
		} `json:"last_anchor"`
	}
	if json.Unmarshal(b, &m) != nil || string(b) == "null" {
		return nil
	}
	a := &AnchorView{State: m.State, Address: m.Address, BalanceSat: m.BalanceSat, Anchors: m.Anchors,
		ConfirmedUpTo: m.ConfirmedUpTo, DaysLeft: m.DaysLeft, LowFunds: m.LowFunds, Error: m.Error}
	if m.Next != nil {
		a.NextAnchor = fmt.Sprint(m.Next)
		if t, err := time.Parse(time.RFC3339Nano, a.NextAnchor); err == nil {
			a.NextAnchor = t.UTC().Format("2006-01-02 15:04:05 UTC")
		}
	}
	if m.Last != nil {
		a.LastState, a.LastHeight, a.LastTxID = m.Last.State, m.Last.AnchoredHeight, m.Last.TxID
	}
	if a.State == "" {
		switch {
		case a.Error != "":
			a.State = "failing"
		case a.LowFunds:
			a.State = "low funds"
		default:
			a.State = "on"
		}
	}
	return a
}
