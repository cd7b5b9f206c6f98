package analyze

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"cissan/internal/event"
	"cissan/internal/iforest"
)

// IForestConfig is one Isolation Forest analyzer's configuration (JSON,
// recorded on the chain). Zero values take the defaults.
type IForestConfig struct {
	Namespace     string   `json:"namespace,omitempty"`     // "" = every namespace
	Keys          []string `json:"keys"`                    // item keys to model, numeric values only
	PerDevice     bool     `json:"per_device,omitempty"`    // one model per (namespace, key, device) instead of per (namespace, key)
	Trees         int      `json:"trees,omitempty"`         // default 100
	SampleSize    int      `json:"sample_size,omitempty"`   // default 256
	Window        int      `json:"window,omitempty"`        // values kept per model for training, default 2048
	MinTrain      int      `json:"min_train,omitempty"`     // values needed before a first model, default 256
	RetrainEvery  uint64   `json:"retrain_every,omitempty"` // blocks between retrainings, default 10
	Threshold     float64  `json:"threshold,omitempty"`     // score at or above which a value is tagged "anomaly"; default 0.65 unless Contamination is set
	Contamination float64  `json:"contamination,omitempty"` // if set, in (0, 0.5]: threshold = the (1-contamination) quantile of the training window's own scores
	MaxModels     int      `json:"max_models,omitempty"`    // cap on models; values of new model keys beyond it are ignored; default 1000
}

// IForest defaults and limits.
const (
	DefaultIForestWindow       = 2048
	DefaultIForestMinTrain     = 256
	DefaultIForestRetrainEvery = 10
	DefaultIForestThreshold    = 0.65
	DefaultIForestMaxModels    = 1000

	maxIForestTrees  = 1000
	maxIForestWindow = 1 << 16
	maxIForestModels = 100_000
)

// ErrIForestConfig is wrapped by every IForestConfig.Validate error.
var ErrIForestConfig = errors.New("iforest config")

// Validate checks the configuration; errors name the JSON field.
func (c IForestConfig) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrIForestConfig, field, fmt.Sprintf(format, args...))
	}
	if c.Namespace != "" {
		if err := event.CheckNamespace(c.Namespace, event.DefaultLimits().MaxNSPartLen); err != nil {
			return bad("namespace", "%q is not org/group", c.Namespace)
		}
	}
	if len(c.Keys) == 0 {
		return bad("keys", "must name at least one item key")
	}
	seen := map[string]bool{}
	for i, k := range c.Keys {
		switch {
		case k == "":
			return bad(fmt.Sprintf("keys[%d]", i), "must not be empty")
		case strings.IndexByte(k, 0) >= 0:
			return bad(fmt.Sprintf("keys[%d]", i), "must not contain a NUL byte")
		case seen[k]:
			return bad(fmt.Sprintf("keys[%d]", i), "%q is listed twice", k)
		}
		seen[k] = true
	}
	d := c.withDefaults()
	switch {
	case c.Trees < 0 || c.Trees > maxIForestTrees:
		return bad("trees", "%d is outside 1..%d (0 for the default %d)", c.Trees, maxIForestTrees, iforest.DefaultTrees)
	case c.Window < 0 || c.Window > maxIForestWindow:
		return bad("window", "%d is outside 2..%d (0 for the default %d)", c.Window, maxIForestWindow, DefaultIForestWindow)
	case c.Window == 1:
		return bad("window", "must hold at least 2 values")
	case c.SampleSize < 0 || c.SampleSize == 1 || d.SampleSize > d.Window:
		return bad("sample_size", "%d is outside 2..window (%d) (0 for the default %d)", c.SampleSize, d.Window, iforest.DefaultSampleSize)
	case c.MinTrain < 0 || c.MinTrain == 1 || d.MinTrain > d.Window:
		return bad("min_train", "%d is outside 2..window (%d) (0 for the default %d)", c.MinTrain, d.Window, DefaultIForestMinTrain)
	case c.MaxModels < 0 || c.MaxModels > maxIForestModels:
		return bad("max_models", "%d is outside 1..%d (0 for the default %d)", c.MaxModels, maxIForestModels, DefaultIForestMaxModels)
	case math.IsNaN(c.Threshold) || c.Threshold < 0 || c.Threshold > 1:
		return bad("threshold", "%v is outside (0, 1] (0 for the default %v)", c.Threshold, DefaultIForestThreshold)
	case math.IsNaN(c.Contamination) || c.Contamination < 0 || c.Contamination > 0.5:
		return bad("contamination", "%v is outside (0, 0.5] (0 for none)", c.Contamination)
	case c.Threshold != 0 && c.Contamination != 0:
		return bad("threshold", "set either threshold or contamination, not both")
	}
	return nil
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c IForestConfig) withDefaults() IForestConfig {
	if c.Trees == 0 {
		c.Trees = iforest.DefaultTrees
	}
	if c.Window == 0 {
		c.Window = DefaultIForestWindow
	}
	if c.SampleSize == 0 {
		c.SampleSize = min(iforest.DefaultSampleSize, c.Window)
	}
	if c.MinTrain == 0 {
		c.MinTrain = min(DefaultIForestMinTrain, c.Window)
	}
	if c.RetrainEvery == 0 {
		c.RetrainEvery = DefaultIForestRetrainEvery
	}
	if c.Threshold == 0 && c.Contamination == 0 {
		c.Threshold = DefaultIForestThreshold
	}
	if c.MaxModels == 0 {
		c.MaxModels = DefaultIForestMaxModels
	}
	return c
}

// IForest tags numeric values that its Isolation Forest models find
// anomalous. Models are kept per (namespace, key), or per (namespace, key,
// device) with PerDevice, and trained on a sliding window of earlier values
// from the chain, every RetrainEvery blocks, with every random choice
// seeded from the hash of the block where training happens. A tag is
//
//	{Analyzer: "iforest", Key: <item key>, Label: "anomaly",
//	 Model: "h<height of the training block>", Score: round(score * ScoreScale)}
//
// Determinism: the state is a function of the sequence of Apply calls
// alone (package iforest is bit-for-bit reproducible, values are taken in
// block, entry and item order, models are trained in sorted key order and
// nothing depends on map iteration, time or scheduling). Memory is bounded
// by MaxModels windows of Window values and one forest each (about 170 KB
// with the defaults).
type IForest struct {
	cfg  IForestConfig // with defaults
	keys map[string]bool

	mu       sync.RWMutex
	models   map[ifModelKey]*ifModel
	sorted   []ifModelKey // the keys of models, in ifModelKey.compare order
	training *training    // forests being fitted in the background, or nil
}

// training is a round of fits started at one block and put in force at the
// end of the next: the fits run beside the block's validation instead of
// in it, and every node puts them in force at the same height, whenever
// its own fits finish.
type training struct {
	installAt uint64        // height whose Apply installs the results
	done      chan struct{} // closed when results is complete
	results   []fitted
}

type fitted struct {
	m         *ifModel
	forest    *iforest.Forest
	threshold float64
	version   string
}

var _ Analyzer = (*IForest)(nil)

// ifModelKey names a model. dev is "" unless the config is per device.
type ifModelKey struct{ ns, key, dev string }

// bytes is the key as it enters the training seed: ns 0x00 key 0x00 dev.
// Namespaces, keys and device ids cannot hold 0x00, so it is unambiguous.
func (k ifModelKey) bytes() []byte {
	b := make([]byte, 0, len(k.ns)+len(k.key)+len(k.dev)+2)
	b = append(b, k.ns...)
	b = append(b, 0)
	b = append(b, k.key...)
	b = append(b, 0)
	return append(b, k.dev...)
}

// compare orders keys as their bytes() compare.
func (k ifModelKey) compare(o ifModelKey) int {
	if c := strings.Compare(k.ns, o.ns); c != 0 {
		return c
	}
	if c := strings.Compare(k.key, o.key); c != 0 {
		return c
	}
	return strings.Compare(k.dev, o.dev)
}

type ifModel struct {
	win  []float64 // ring buffer of the latest values, at most Window
	next int       // where the next value goes once win is full

	forest    *iforest.Forest // nil until the first training
	version   string          // "h<height>"
	threshold float64
}

func (m *ifModel) push(v float64, capacity int) {
	if len(m.win) < capacity {
		m.win = append(m.win, v)
		return
	}
	m.win[m.next] = v
	m.next++
	if m.next == capacity {
		m.next = 0
	}
}

// rows returns the window oldest first, as one-feature rows.
func (m *ifModel) rows() [][]float64 {
	flat := make([]float64, 0, len(m.win))
	flat = append(flat, m.win[m.next:]...)
	flat = append(flat, m.win[:m.next]...)
	rows := make([][]float64, len(flat))
	for i := range flat {
		rows[i] = flat[i : i+1 : i+1]
	}
	return rows
}

// NewIForest returns an Isolation Forest analyzer with no models yet.
func NewIForest(c IForestConfig) (*IForest, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	a := &IForest{
		cfg:    c.withDefaults(),
		keys:   make(map[string]bool, len(c.Keys)),
		models: map[ifModelKey]*ifModel{},
	}
	a.cfg.Keys = slices.Clone(c.Keys)
	for _, k := range c.Keys {
		a.keys[k] = true
	}
	return a, nil
}

// Name implements Analyzer.
func (*IForest) Name() string { return "iforest" }

// Config returns the configuration in force, defaults filled in.
func (a *IForest) Config() IForestConfig {
	c := a.cfg
	c.Keys = slices.Clone(c.Keys)
	return c
}

func (a *IForest) modelKey(ev *event.Event, key string) ifModelKey {
	k := ifModelKey{ns: ev.Namespace, key: key}
	if a.cfg.PerDevice {
		k.dev = ev.DeviceUID
	}
	return k
}

// watched reports whether the item is one the analyzer models.
func (a *IForest) watched(it *event.Item) bool {
	v := it.Value
	return v.Kind == event.KindNumber && !math.IsNaN(v.Num) && !math.IsInf(v.Num, 0) && a.keys[it.Key]
}

// Tags implements Analyzer: each configured numeric item whose model is
// trained is scored, and tagged when the score reaches the threshold.
// Items are visited in event order, so the output order is the event's.
func (a *IForest) Tags(ev *event.Event) []event.Tag {
	if a.cfg.Namespace != "" && ev.Namespace != a.cfg.Namespace {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []event.Tag
	var x [1]float64
	for i := range ev.Items {
		it := &ev.Items[i]
		if !a.watched(it) {
			continue
		}
		m := a.models[a.modelKey(ev, it.Key)]
		if m == nil || m.forest == nil {
			continue
		}
		x[0] = it.Value.Num
		if s := m.forest.Score(x[:]); s >= m.threshold {
			out = append(out, event.Tag{Analyzer: "iforest", Key: it.Key, Label: "anomaly", Model: m.version, Score: scoreFixed(s)})
		}
	}
	return out
}

// scoreFixed converts a score in [0, 1] to ScoreScale fixed point. The
// product is one IEEE operation and math.Round is exact, so every platform
// gets the same integer from the same score bits.
func scoreFixed(s float64) int64 {
	return int64(math.Round(float64(s * event.ScoreScale)))
}

// Apply implements Analyzer. First every configured numeric value of the
// block, in entry and item order, enters its model's window; then, on
// blocks where (height+1) is a multiple of RetrainEvery, every model with
// at least MinTrain values is retrained, in sorted key order, with seed
// SHA-256(block hash || model key bytes) and version "h<height>".
func (a *IForest) Apply(b Block) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, en := range b.Entries {
		ev := &en.Event
		if a.cfg.Namespace != "" && ev.Namespace != a.cfg.Namespace {
			continue
		}
		for i := range ev.Items {
			it := &ev.Items[i]
			if !a.watched(it) {
				continue
			}
			m := a.model(a.modelKey(ev, it.Key))
			if m != nil {
				m.push(it.Value.Num, a.cfg.Window)
			}
		}
	}
	if t := a.training; t != nil && t.installAt == b.Height {
		<-t.done
		for _, r := range t.results {
			r.m.forest, r.m.threshold, r.m.version = r.forest, r.threshold, r.version
		}
		a.training = nil
	}
	if (b.Height+1)%a.cfg.RetrainEvery != 0 {
		return
	}
	// Snapshot the windows now; fit in the background; install at the end
	// of the next block's Apply, so the new models score from block
	// b.Height+2 on.
	version := "h" + strconv.FormatUint(b.Height, 10)
	t := &training{installAt: b.Height + 1, done: make(chan struct{})}
	type job struct {
		m    *ifModel
		rows [][]float64
		seed [32]byte
	}
	var jobs []job
	for _, k := range a.sorted {
		m := a.models[k]
		if len(m.win) < a.cfg.MinTrain {
			continue
		}
		jobs = append(jobs, job{m: m, rows: m.rows(), seed: trainingSeed(b.Hash, k)})
	}
	a.training = t
	cfg := a.cfg
	go func() {
		defer close(t.done)
		for _, j := range jobs {
			if f, threshold, ok := fit(cfg, j.rows, j.seed); ok {
				t.results = append(t.results, fitted{m: j.m, forest: f, threshold: threshold, version: version})
			}
		}
	}()
}

// model returns the model for k, creating it unless the cap is reached;
// then it returns nil and the value is ignored, the same on every node.
func (a *IForest) model(k ifModelKey) *ifModel {
	if m := a.models[k]; m != nil {
		return m
	}
	if len(a.models) >= a.cfg.MaxModels {
		return nil
	}
	m := &ifModel{}
	a.models[k] = m
	i, _ := slices.BinarySearchFunc(a.sorted, k, ifModelKey.compare)
	a.sorted = slices.Insert(a.sorted, i, k)
	return m
}

// trainingSeed is SHA-256(block hash || model key bytes).
func trainingSeed(hash [32]byte, k ifModelKey) [32]byte {
	h := sha256.New()
	h.Write(hash[:])
	h.Write(k.bytes())
	var seed [32]byte
	h.Sum(seed[:0])
	return seed
}

// fit trains one model on its window and derives its threshold.
func fit(cfg IForestConfig, rows [][]float64, seed [32]byte) (*iforest.Forest, float64, bool) {
	f, err := iforest.Fit(rows, iforest.Params{Trees: cfg.Trees, SampleSize: cfg.SampleSize}, seed)
	if err != nil {
		// Unreachable: windows hold at least MinTrain >= 2 finite values.
		// Every node would fail alike and keep the previous model.
		return nil, 0, false
	}
	threshold := cfg.Threshold
	if cfg.Contamination > 0 {
		scores := make([]float64, len(rows))
		for i, r := range rows {
			scores[i] = f.Score(r)
		}
		slices.Sort(scores)
		threshold = quantile(scores, 1-cfg.Contamination)
	}
	return f, threshold, true
}

// quantile returns the q quantile of sorted values by linear interpolation
// between closest ranks (numpy's default, which scikit-learn's
// contamination offset uses), written so that no multiply-add is fused.
func quantile(sorted []float64, q float64) float64 {
	pos := float64(q * float64(len(sorted)-1))
	lo := int(pos) // pos >= 0: truncation is floor
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	frac := pos - float64(lo)
	return sorted[lo] + float64(frac*(sorted[lo+1]-sorted[lo]))
}
