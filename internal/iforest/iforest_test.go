package iforest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// cExact computes c(n) in exact rational arithmetic, as a reference.
func cExact(n int) float64 {
	if n <= 1 {
		return 0
	}
	if n == 2 {
		return 1
	}
	h := new(big.Rat)
	for i := 1; i < n; i++ {
		h.Add(h, big.NewRat(1, int64(i)))
	}
	c := new(big.Rat).Mul(h, big.NewRat(2, 1))
	c.Sub(c, big.NewRat(int64(2*(n-1)), int64(n)))
	f, _ := c.Float64()
	return f
}

func TestC(t *testing.T) {
	cases := []struct {
		n    int
		want float64
	}{
		{0, 0}, {1, 0}, {2, 1},
		{3, 2*1.5 - 4.0/3},
		{4, 2*(1+0.5+1.0/3) - 6.0/4},
	}
	for _, c := range cases {
		if got := C(c.n); got != c.want {
			t.Errorf("C(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	for _, n := range []int{5, 10, 100, 256, 1000, 4096} {
		got, want := C(n), cExact(n)
		if math.Abs(got-want) > 1e-12*want {
			t.Errorf("C(%d) = %v, exact %v", n, got, want)
		}
	}
	// c(256) against the asymptotic form scikit-learn uses: they differ by
	// about 1/(n-1).
	if got, sk := C(256), 2*(math.Log(255)+0.5772156649015329)-2*255.0/256; math.Abs(got-sk) > 1.0/255 {
		t.Errorf("C(256) = %v, scikit-learn's approximation %v", got, sk)
	}
	// The table Fit uses must agree with C bit for bit.
	tab := cTable(600)
	for n := range tab {
		if math.Float64bits(tab[n]) != math.Float64bits(C(n)) {
			t.Fatalf("cTable[%d] = %v, C(%d) = %v", n, tab[n], n, C(n))
		}
	}
}

func TestPow2(t *testing.T) {
	for x := -20.0; x <= 2; x += 0.0173 {
		got, want := pow2(x), math.Exp2(x)
		if math.Abs(got-want) > 4e-16*want {
			t.Errorf("pow2(%v) = %v, math.Exp2 %v", x, got, want)
		}
	}
	for _, x := range []float64{0, -1, -2, -10, 1, 3} {
		if got := pow2(x); got != math.Exp2(x) {
			t.Errorf("pow2(%v) = %v, want exactly %v", x, got, math.Exp2(x))
		}
	}
	if got := pow2(-2000); got != 0 {
		t.Errorf("pow2(-2000) = %v, want 0", got)
	}
}

// TestRandReference checks xoshiro256** against the reference
// implementation's output for the state {1, 2, 3, 4}, and pins the
// seeding, so that a change to either cannot go unnoticed: it would change
// every forest on the chain.
func TestRandReference(t *testing.T) {
	r := &Rand{s: [4]uint64{1, 2, 3, 4}}
	want := []uint64{11520, 0, 1509978240, 1215971899390074240}
	for i, w := range want {
		if got := r.Uint64(); got != w {
			t.Fatalf("output %d = %d, want %d", i, got, w)
		}
	}
	var seed [32]byte
	copy(seed[:], "cissan iforest seed test vector!")
	r = NewRand(seed)
	h := sha256.New()
	for range 1000 {
		h.Write(binary.BigEndian.AppendUint64(nil, r.Uint64()))
	}
	const pinned = "71c3974bcba997d90ddfde7ab72a0f882f8d4d334e392a82b84f18d3d675e0b6"
	if got := hex.EncodeToString(h.Sum(nil)); got != pinned {
		t.Errorf("stream digest = %s, pinned %s", got, pinned)
	}
}

func TestRandIntnAndFloat64(t *testing.T) {
	r := NewRand([32]byte{1})
	var counts [7]int
	for range 70000 {
		counts[r.Intn(7)]++
	}
	for i, c := range counts {
		if c < 9000 || c > 11000 {
			t.Errorf("Intn(7) gave %d %d times in 70000 draws", i, c)
		}
	}
	for range 10000 {
		if u := r.Float64(); u < 0 || u >= 1 {
			t.Fatalf("Float64 = %v, outside [0, 1)", u)
		}
	}
}

// cloud returns n rows of d features, uniform in [0, 1), from a Rand: the
// data of the pinned tests, built without any math function.
func cloud(n, d int, seed byte) [][]float64 {
	r := NewRand([32]byte{seed})
	rows := make([][]float64, n)
	for i := range rows {
		rows[i] = make([]float64, d)
		for j := range rows[i] {
			rows[i][j] = r.Float64()
		}
	}
	return rows
}

func TestOutliersScoreHigher(t *testing.T) {
	data := cloud(1000, 2, 7)
	outliers := [][]float64{{5, 5}, {-4, 0.5}, {0.5, 9}, {3, -3}}
	data = append(data, outliers...)
	f, err := Fit(data, Params{}, [32]byte{42})
	if err != nil {
		t.Fatal(err)
	}
	if f.Trees() != 100 || f.SampleSize() != 256 || f.Features() != 2 {
		t.Fatalf("forest has %d trees, psi %d, %d features; want 100, 256, 2", f.Trees(), f.SampleSize(), f.Features())
	}
	maxIn, sumIn := 0.0, 0.0
	for _, x := range data[:1000] {
		s := f.Score(x)
		sumIn += s
		maxIn = max(maxIn, s)
	}
	for _, x := range outliers {
		if s := f.Score(x); s < 0.6 || s <= maxIn {
			t.Errorf("outlier %v scores %.3f; inliers score up to %.3f", x, s, maxIn)
		}
	}
	if mean := sumIn / 1000; mean > 0.5 {
		t.Errorf("mean inlier score %.3f, want below 0.5", mean)
	}
	if s := f.Score([]float64{0.5, 0.5}); s > 0.5 {
		t.Errorf("the centre of the cloud scores %.3f", s)
	}
}

func TestConstantDataScoresOneHalf(t *testing.T) {
	data := make([][]float64, 300)
	for i := range data {
		data[i] = []float64{3, -1}
	}
	f, err := Fit(data, Params{Trees: 10}, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.PathLength([]float64{3, -1}); math.Abs(got-C(256)) > 1e-14 {
		t.Errorf("path length %v, want C(256) = %v", got, C(256))
	}
	if got := f.Score([]float64{100, 100}); math.Abs(got-0.5) > 1e-15 {
		t.Errorf("score %v, want 0.5", got)
	}
	if len(f.nodes) != 10 {
		t.Errorf("%d nodes, want one leaf per tree", len(f.nodes))
	}
}

func TestDepthLimitAndSmallData(t *testing.T) {
	// psi = min(256, 50) = 50, depth limit ceil(log2(50)) = 6.
	data := cloud(50, 1, 3)
	f, err := fit(data, Params{Trees: 20}, [32]byte{9})
	if err != nil {
		t.Fatal(err)
	}
	if f.SampleSize() != 50 || f.maxDepth != 6 {
		t.Fatalf("psi %d, depth %d; want 50, 6", f.SampleSize(), f.maxDepth)
	}
	for _, n := range f.nodes {
		if n.feat < 0 && n.v > 6+C(50) {
			t.Fatalf("leaf path length %v exceeds the depth limit", n.v)
		}
	}
	f, err = fit(data, Params{Trees: 5, SampleSize: 16, MaxDepth: 2}, [32]byte{9})
	if err != nil {
		t.Fatal(err)
	}
	if f.maxDepth != 2 || len(f.nodes) > 5*7 {
		t.Fatalf("MaxDepth 2 gave depth %d and %d nodes", f.maxDepth, len(f.nodes))
	}
}

// TestCompiledEqualsWalk checks that the step-function form of a
// one-feature forest gives, bit for bit, what walking its trees gives: at
// every cut, just beside it, between cuts, beyond both ends and for NaN.
func TestCompiledEqualsWalk(t *testing.T) {
	data := cloud(3000, 1, 4)
	for i := range 40 { // duplicates and a stuck run
		data[i*7][0] = 0.25
	}
	data = append(data, []float64{-3}, []float64{7})
	for _, p := range []Params{{}, {Trees: 7, SampleSize: 64}, {Trees: 30, MaxDepth: 12}} {
		walked, err := fit(data, p, [32]byte{3})
		if err != nil {
			t.Fatal(err)
		}
		compiled, err := fit(data, p, [32]byte{3})
		if err != nil {
			t.Fatal(err)
		}
		compiled.compile()
		if compiled.nodes != nil || len(compiled.sums) != len(compiled.cuts)+1 {
			t.Fatal("compile left nodes or a short table")
		}
		xs := []float64{math.Inf(-1), -1e300, -3, 7, 1e300, math.Inf(1), math.NaN(), 0, 1, 0.25}
		for _, c := range compiled.cuts {
			xs = append(xs, c, math.Nextafter(c, math.Inf(1)), math.Nextafter(c, math.Inf(-1)))
		}
		for _, r := range cloud(2000, 1, 99) {
			xs = append(xs, r[0])
		}
		for _, x := range xs {
			w, c := walked.PathLength([]float64{x}), compiled.PathLength([]float64{x})
			if math.Float64bits(w) != math.Float64bits(c) {
				t.Fatalf("%+v: x=%v: walk %v, compiled %v", p, x, w, c)
			}
		}
		if compiled.Bytes() >= walked.Bytes() {
			t.Errorf("compiled forest takes %d bytes, nodes %d", compiled.Bytes(), walked.Bytes())
		}
	}
}

// fingerprint hashes the bits of the scores of a grid of points.
func fingerprint(f *Forest, probes [][]float64) [32]byte {
	h := sha256.New()
	for _, x := range probes {
		h.Write(binary.BigEndian.AppendUint64(nil, math.Float64bits(f.Score(x))))
		h.Write(binary.BigEndian.AppendUint64(nil, math.Float64bits(f.PathLength(x))))
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func probes() [][]float64 {
	var ps [][]float64
	for x := -0.5; x <= 1.5; x += 0.0625 {
		for y := -0.5; y <= 1.5; y += 0.125 {
			ps = append(ps, []float64{x, y})
		}
	}
	return ps
}

func TestDeterminism(t *testing.T) {
	data := cloud(2000, 2, 5)
	seed := sha256.Sum256([]byte("block hash"))
	ps := probes()
	fit := func() [32]byte {
		f, err := Fit(data, Params{}, seed)
		if err != nil {
			t.Error(err)
			return [32]byte{}
		}
		return fingerprint(f, ps)
	}
	want := fit()
	if got := fit(); got != want {
		t.Fatal("two fits with one seed score differently")
	}

	// Fitted and scored concurrently, on whatever schedule the runtime picks.
	var wg sync.WaitGroup
	got := make([][32]byte, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = fit()
		}()
	}
	wg.Wait()
	for i, g := range got {
		if g != want {
			t.Errorf("goroutine %d: scores differ from the sequential fit", i)
		}
	}

	// One forest scored from many goroutines at once.
	f, err := Fit(data, Params{}, seed)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = fingerprint(f, ps)
		}()
	}
	wg.Wait()
	for i, g := range got {
		if g != want {
			t.Errorf("concurrent scorer %d: scores differ", i)
		}
	}

	// Pinned: the same data, parameters and seed give these bits on every
	// platform. If this changes, every hub's tags change with it.
	const pinned = "88708046fc092648d6f2c50d3f3bc62d71f8f6299f72bab56bf85a67a828ee07"
	if hex.EncodeToString(want[:]) != pinned {
		t.Errorf("score fingerprint %x, pinned %s", want, pinned)
	}
}

func TestDifferentSeedsDifferentForests(t *testing.T) {
	data := cloud(1000, 1, 8)
	a, err := Fit(data, Params{}, [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Fit(data, Params{}, [32]byte{2})
	if err != nil {
		t.Fatal(err)
	}
	ps := [][]float64{{-1}, {0.1}, {0.5}, {0.77}, {2}}
	if fingerprint(a, ps) == fingerprint(b, ps) {
		t.Fatal("forests from different seeds score identically")
	}
	// Changing a single row's value changes the forest too.
	data[17][0] += 0.5
	c, err := Fit(data, Params{}, [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if fingerprint(a, ps) == fingerprint(c, ps) {
		t.Fatal("a changed row left the forest unchanged")
	}
}

func TestFitRefuses(t *testing.T) {
	cases := []struct {
		name string
		data [][]float64
		p    Params
		want error
	}{
		{"nil", nil, Params{}, ErrNoData},
		{"one row", [][]float64{{1}}, Params{}, ErrNoData},
		{"no features", [][]float64{{}, {}}, Params{}, ErrNoData},
		{"ragged", [][]float64{{1, 2}, {3}}, Params{}, ErrRagged},
		{"NaN", [][]float64{{1}, {math.NaN()}}, Params{}, ErrNotFinite},
		{"+Inf", [][]float64{{math.Inf(1)}, {2}}, Params{}, ErrNotFinite},
		{"-Inf", [][]float64{{1, 2}, {3, math.Inf(-1)}}, Params{}, ErrNotFinite},
		{"negative trees", [][]float64{{1}, {2}}, Params{Trees: -1}, ErrParams},
		{"sample size 1", [][]float64{{1}, {2}}, Params{SampleSize: 1}, ErrParams},
		{"negative depth", [][]float64{{1}, {2}}, Params{MaxDepth: -3}, ErrParams},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Fit(c.data, c.p, [32]byte{})
			if !errors.Is(err, c.want) {
				t.Fatalf("Fit = %v, %v; want %v", f, err, c.want)
			}
			t.Log(err)
		})
	}
}

func TestSplitPointStaysInRange(t *testing.T) {
	cases := [][2]float64{{0, 1}, {-math.MaxFloat64, math.MaxFloat64}, {1, math.Nextafter(1, 2)}, {-5, -4}}
	for _, c := range cases {
		for _, u := range []float64{0, 0.5, 1 - 0x1p-53} {
			if got := splitPoint(c[0], c[1], u); !(got >= c[0] && got < c[1]) {
				t.Errorf("splitPoint(%v, %v, %v) = %v", c[0], c[1], u, got)
			}
		}
	}
	// Extreme but finite data fits and scores.
	f, err := Fit([][]float64{{-math.MaxFloat64}, {math.MaxFloat64}, {0}}, Params{Trees: 3}, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	if s := f.Score([]float64{1}); !(s > 0 && s <= 1) {
		t.Fatalf("score %v", s)
	}
}

// fusedOp matches the fused multiply-add instructions of the Go assemblers
// of arm64, ppc64le, s390x, riscv64 and loong64 in `go build -gcflags=-S`
// output (integer MADD/MSUB have no F and do not match).
var fusedOp = regexp.MustCompile(`\t(FN?M(ADD|SUB)[DS]?|WFN?M[AS][DS]B)\t`)

// TestNoFusedMultiplyAdd is a house rule as a test: the compiler may fuse
// x*y+z on the platforms above, which would give their hubs other scores
// than amd64's. Every product added to something must be converted
// explicitly (float64(x*y) + z), and this checks that none slipped through,
// in this package and in the analyzers that use it. The compiler's
// listing is replayed from the build cache, so this is quick after the
// first run.
func TestNoFusedMultiplyAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles for other architectures")
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		t.Skipf("no go command at %s", goTool)
	}
	for _, arch := range []string{"arm64", "ppc64le", "s390x", "riscv64", "loong64"} {
		for _, pkg := range []string{"cissan/internal/iforest", "cissan/internal/analyze"} {
			cmd := exec.Command(goTool, "build", "-gcflags="+pkg+"=-S", pkg)
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0", "GOFLAGS=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("GOARCH=%s go build %s: %v\n%s", arch, pkg, err, out)
			}
			if !strings.Contains(string(out), "TEXT") {
				t.Fatalf("GOARCH=%s go build %s printed no assembly listing", arch, pkg)
			}
			for _, line := range strings.Split(string(out), "\n") {
				if fusedOp.MatchString(line) {
					t.Errorf("GOARCH=%s: fused multiply-add in %s:\n%s", arch, pkg, strings.TrimSpace(line))
				}
			}
		}
	}
}

// BenchmarkScore scores a one-feature forest, which is a lookup table.
func BenchmarkScore(b *testing.B) { benchScore(b, 1) }

// BenchmarkScore2D scores a two-feature forest, which walks the trees.
func BenchmarkScore2D(b *testing.B) { benchScore(b, 2) }

func benchScore(b *testing.B, features int) {
	f, err := Fit(cloud(4096, features, 1), Params{Trees: 100, SampleSize: 256}, [32]byte{1})
	if err != nil {
		b.Fatal(err)
	}
	xs := cloud(1024, features, 2)
	b.ReportAllocs()
	b.ResetTimer()
	sink := 0.0
	for i := 0; b.Loop(); i++ {
		sink += f.Score(xs[i&1023])
	}
	_ = sink
}

func BenchmarkFit(b *testing.B) {
	data := cloud(2048, 1, 1)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Fit(data, Params{Trees: 100, SampleSize: 256}, [32]byte{byte(i)}); err != nil {
			b.Fatal(err)
		}
	}
}
