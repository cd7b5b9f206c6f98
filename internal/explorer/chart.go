package explorer

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// chartInput is one event of a device, for its chart.
type chartInput struct {
	T       int64 // event timestamp, ms
	UID     string
	Values  map[string]float64 // numeric items
	Tags    []string           // analyzer labels
	TagKeys []string           // item keys the tags are about
}

// chart is a device's numeric items over time, one small panel per key,
// drawn on the server as SVG: it needs no script and reads the same in
// every browser.
type chart struct {
	Panels []panel
	From   string
	To     string
}

type panel struct {
	Key      string
	Path     string // SVG path data of the line
	Marks    []mark // anomalies: events an analyzer tagged
	Dots     []mark // every sample, when there are few
	Min, Max string
	Last     string
	Count    int
	Flagged  int
}

type mark struct {
	X, Y  string
	Title string
}

// Chart geometry, in SVG user units (viewBox 0 0 chartW chartH).
const (
	chartW, chartH = 640.0, 150.0
	padL, padR     = 8.0, 8.0
	padT, padB     = 10.0, 10.0
	maxPanels      = 6
)

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func buildChart(pts []chartInput) *chart {
	if len(pts) == 0 {
		return nil
	}
	keys := map[string]int{}
	for _, p := range pts {
		for k := range p.Values {
			keys[k]++
		}
	}
	if len(keys) == 0 {
		return nil
	}
	order := make([]string, 0, len(keys))
	for k := range keys {
		order = append(order, k)
	}
	// The keys seen most often first, then by name.
	sort.Slice(order, func(i, j int) bool {
		if keys[order[i]] != keys[order[j]] {
			return keys[order[i]] > keys[order[j]]
		}
		return order[i] < order[j]
	})
	if len(order) > maxPanels {
		order = order[:maxPanels]
	}
	t0, t1 := pts[0].T, pts[len(pts)-1].T
	c := &chart{From: time.UnixMilli(t0).UTC().Format("2006-01-02 15:04:05"), To: time.UnixMilli(t1).UTC().Format("2006-01-02 15:04:05 UTC")}
	x := func(t int64) float64 {
		if t1 == t0 {
			return chartW / 2
		}
		return padL + (chartW-padL-padR)*float64(t-t0)/float64(t1-t0)
	}
	for _, k := range order {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range pts {
			if v, ok := p.Values[k]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
		if math.IsInf(lo, 0) {
			continue
		}
		span := hi - lo
		if span == 0 {
			span = 1
			lo -= 0.5
		}
		y := func(v float64) float64 { return padT + (chartH-padT-padB)*(1-(v-lo)/span) }
		pn := panel{Key: k, Min: trimNum(lo), Max: trimNum(lo + span)}
		if hi-lo == 0 {
			pn.Min, pn.Max = trimNum(hi), trimNum(hi)
		}
		var path strings.Builder
		for _, p := range pts {
			v, ok := p.Values[k]
			if !ok {
				continue
			}
			cmd := "L"
			if pn.Count == 0 {
				cmd = "M"
			}
			px, py := f1(x(p.T)), f1(y(v))
			fmt.Fprintf(&path, "%s%s %s ", cmd, px, py)
			pn.Count++
			pn.Last = trimNum(v)
			m := mark{X: px, Y: py, Title: time.UnixMilli(p.T).UTC().Format("15:04:05") + " " + k + "=" + trimNum(v)}
			if len(p.Tags) > 0 && (len(p.TagKeys) == 0 || slices.Contains(p.TagKeys, k)) {
				m.Title += " — " + strings.Join(p.Tags, ", ")
				pn.Marks = append(pn.Marks, m)
				pn.Flagged++
			} else if len(pts) <= 60 {
				pn.Dots = append(pn.Dots, m)
			}
		}
		pn.Path = strings.TrimSpace(path.String())
		c.Panels = append(c.Panels, pn)
	}
	return c
}

func trimNum(v float64) string {
	return strconv.FormatFloat(v, 'g', 6, 64)
}
