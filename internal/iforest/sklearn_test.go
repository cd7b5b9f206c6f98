package iforest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The reference: Debian's python3 with python3-sklearn. The python3 on PATH
// may be another interpreter without scikit-learn, so the path is explicit.
const refPython = "/usr/bin/python3"

// Forests fitted per scenario on each side; the AUCs compared are means
// over these seeds, so that one forest's luck does not decide the test.
const refSeeds = 5

// maxAUCGap is the bound on |ours - scikit-learn's|.
const maxAUCGap = 0.02

// scenario is a synthetic sensor stream with injected anomalies.
type scenario struct {
	name   string
	rows   [][]float64
	labels []bool // true for injected anomalies
}

// stream generates test data. It is seeded, so every run sees the same
// data; unlike Fit it may use math functions, since only this process
// and the reference read the data, from the CSV it writes.
type stream struct{ r *Rand }

func newStream(name string) *stream {
	return &stream{NewRand(sha256.Sum256([]byte("scenario " + name)))}
}

// normal returns a standard normal draw (Box-Muller).
func (s *stream) normal() float64 {
	u := 1 - s.r.Float64() // (0, 1]
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*s.r.Float64())
}

// base is an ordinary temperature-like signal: a daily cycle plus noise.
func (s *stream) base(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = 20 + 2*math.Sin(2*math.Pi*float64(i)/400) + 0.3*s.normal()
	}
	return v
}

// segments picks k non-overlapping segments of length l in [0, n), away
// from the ends, in increasing order.
func (s *stream) segments(n, k, l int) []int {
	slot := n / k
	starts := make([]int, k)
	for i := range starts {
		starts[i] = i*slot + l/2 + s.r.Intn(slot-2*l)
	}
	return starts
}

const streamLen = 4000

func oneD(name string, v []float64, labels []bool) scenario {
	rows := make([][]float64, len(v))
	for i := range v {
		rows[i] = []float64{v[i]}
	}
	return scenario{name, rows, labels}
}

// withDiff turns a series into 2-D rows (value, difference from the
// previous value).
func withDiff(name string, v []float64, labels []bool) scenario {
	rows := make([][]float64, len(v))
	for i := range v {
		d := 0.0
		if i > 0 {
			d = v[i] - v[i-1]
		}
		rows[i] = []float64{v[i], d}
	}
	return scenario{name, rows, labels}
}

func spikes(s *stream) ([]float64, []bool) {
	v, lab := s.base(streamLen), make([]bool, streamLen)
	for range 60 {
		i := 1 + s.r.Intn(streamLen-2)
		sign := 1.0
		if s.r.Intn(2) == 0 {
			sign = -1
		}
		v[i] += sign * (3 + 5*s.r.Float64())
		lab[i] = true
	}
	return v, lab
}

func scenarios() []scenario {
	var out []scenario

	s := newStream("spikes")
	v, lab := spikes(s)
	out = append(out, oneD("spikes", v, lab))

	// Slow drifts: the sensor's offset creeps up (or down) over 250 points.
	s = newStream("drift")
	v, lab = s.base(streamLen), make([]bool, streamLen)
	for k, start := range s.segments(streamLen, 3, 250) {
		sign := 1.0
		if k == 1 {
			sign = -1
		}
		for j := range 250 {
			v[start+j] += sign * 5 * float64(j+1) / 250
			lab[start+j] = true
		}
	}
	out = append(out, oneD("drift", v, lab))

	// Stuck sensors: runs where the value freezes at the last reading
	// before the fault, or at the bottom of the sensor's scale.
	for _, atZero := range []bool{false, true} {
		name := "stuck at last value"
		if atZero {
			name = "stuck at zero"
		}
		s = newStream(name)
		v, lab = s.base(streamLen), make([]bool, streamLen)
		for _, start := range s.segments(streamLen, 4, 120) {
			stuck := v[start-1]
			if atZero {
				stuck = 0
			}
			for j := range 120 {
				v[start+j] = stuck
				lab[start+j] = true
			}
		}
		out = append(out, oneD(name, v, lab))
	}

	// Level shifts: the signal jumps by a few degrees for a while.
	s = newStream("level")
	v, lab = s.base(streamLen), make([]bool, streamLen)
	for k, start := range s.segments(streamLen, 3, 200) {
		shift := []float64{4, -3.5, 5}[k]
		for j := range 200 {
			v[start+j] += shift
			lab[start+j] = true
		}
	}
	out = append(out, oneD("level shift", v, lab))

	// The same kinds of spike, seen as (value, difference from previous).
	s = newStream("spikes 2-D")
	v, lab = spikes(s)
	out = append(out, withDiff("spikes, 2-D (value, diff)", v, lab))

	return out
}

// auc is the ROC AUC of scores against labels: the probability that an
// anomaly scores above a normal point, ties counting one half (the
// Mann-Whitney statistic with mid-ranks, as sklearn.metrics.roc_auc_score).
func auc(scores []float64, labels []bool) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	var rankSum float64
	var pos int
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2 // mean of ranks i+1..j
		for k := i; k < j; k++ {
			if labels[idx[k]] {
				rankSum += mid
				pos++
			}
		}
		i = j
	}
	neg := len(scores) - pos
	return (rankSum - float64(pos)*float64(pos+1)/2) / (float64(pos) * float64(neg))
}

func TestAUC(t *testing.T) {
	cases := []struct {
		scores []float64
		labels []bool
		want   float64
	}{
		{[]float64{0.1, 0.2, 0.8, 0.9}, []bool{false, false, true, true}, 1},
		{[]float64{0.9, 0.8, 0.2, 0.1}, []bool{false, false, true, true}, 0},
		{[]float64{0.5, 0.5, 0.5, 0.5}, []bool{false, true, false, true}, 0.5},
		{[]float64{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true}, 0.75},
	}
	for _, c := range cases {
		if got := auc(c.scores, c.labels); got != c.want {
			t.Errorf("auc(%v, %v) = %v, want %v", c.scores, c.labels, got, c.want)
		}
	}
}

// ourAUC fits our forest with refSeeds seeds and returns the mean AUC.
func ourAUC(t *testing.T, sc scenario) float64 {
	sum := 0.0
	for i := range refSeeds {
		f, err := Fit(sc.rows, Params{Trees: 100, SampleSize: 256}, sha256.Sum256([]byte(fmt.Sprintf("%s/%d", sc.name, i))))
		if err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		scores := make([]float64, len(sc.rows))
		for j, x := range sc.rows {
			scores[j] = f.Score(x)
		}
		sum += auc(scores, sc.labels)
	}
	return sum / refSeeds
}

func writeCSV(t *testing.T, path string, sc scenario) {
	var b bytes.Buffer
	b.WriteString("label")
	for j := range sc.rows[0] {
		fmt.Fprintf(&b, ",x%d", j)
	}
	b.WriteByte('\n')
	for i, row := range sc.rows {
		if sc.labels[i] {
			b.WriteString("1")
		} else {
			b.WriteString("0")
		}
		for _, v := range row {
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64)) // exact round trip
		}
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// requireSKLearn skips the test when the reference is missing, except in
// CI, where a missing reference is a failure: .ci/run installs it.
func requireSKLearn(t *testing.T) {
	out, err := exec.Command(refPython, "-c", "import sklearn").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s cannot import sklearn (%v: %s); install it with: apt-get install -y python3-sklearn",
		refPython, err, strings.TrimSpace(string(out)))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestAUCAgainstSKLearn is the quality check: on seeded synthetic
// sensor streams our forest's ROC AUC is within 0.02 of scikit-learn's
// IsolationForest with the same parameters on the same data. The table it
// logs is the one in docs/analyzers.md.
func TestAUCAgainstSKLearn(t *testing.T) {
	requireSKLearn(t)
	scs := scenarios()
	dir := t.TempDir()
	args := []string{filepath.Join("testdata", "compare.py"), "--trees", "100", "--psi", "256", "--seeds", "0,1,2,3,4"}
	for i, sc := range scs {
		p := filepath.Join(dir, fmt.Sprintf("scenario%d.csv", i))
		writeCSV(t, p, sc)
		args = append(args, p)
	}
	cmd := exec.Command(refPython, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("compare.py: %v\n%s", err, stderr.String())
	}
	var ref []struct {
		AUC     float64   `json:"auc"`
		AUCs    []float64 `json:"aucs"`
		Version string    `json:"sklearn"`
	}
	if err := json.Unmarshal(out, &ref); err != nil || len(ref) != len(scs) {
		t.Fatalf("compare.py output %q: %v", out, err)
	}

	var table strings.Builder
	fmt.Fprintf(&table, "scikit-learn %s; 100 trees, psi 256; mean AUC over %d seeds on each side\n\n", ref[0].Version, refSeeds)
	table.WriteString("| scenario | points | anomalies | our AUC | scikit-learn AUC | difference |\n")
	table.WriteString("| --- | ---: | ---: | ---: | ---: | ---: |\n")
	var failed []string
	for i, sc := range scs {
		ours := ourAUC(t, sc)
		d := ours - ref[i].AUC
		n := 0
		for _, l := range sc.labels {
			if l {
				n++
			}
		}
		fmt.Fprintf(&table, "| %s | %d | %d | %.4f | %.4f | %+.4f |\n", sc.name, len(sc.rows), n, ours, ref[i].AUC, d)
		if math.Abs(d) > maxAUCGap {
			failed = append(failed, fmt.Sprintf("%s: ours %.4f, scikit-learn %.4f (per seed %v)", sc.name, ours, ref[i].AUC, ref[i].AUCs))
		}
	}
	t.Log("\n" + table.String())
	for _, f := range failed {
		t.Errorf("AUC differs by more than %.2f: %s", maxAUCGap, f)
	}
}
