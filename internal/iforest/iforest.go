// Package iforest is a deterministic Isolation Forest: the algorithm of
// Liu, Ting and Zhou ("Isolation Forest", ICDM 2008), behaving like
// scikit-learn's IsolationForest (sub-sampling without replacement, a depth
// limit of ceil(log2(psi)), a random split uniform between the node's
// minimum and maximum, c(n) added at external nodes, and the anomaly score
// s(x) = 2^(-E(h(x))/c(psi))).
//
// What it promises beyond the paper: a forest and every score it returns are
// a pure function of the data (in row order), the parameters and the 32-byte
// seed, bit for bit, on every platform Go supports and under any goroutine
// schedule. Hubs of a cissan network rely on this to reproduce each other's
// tags before they countersign a block. To that end:
//
//   - every random choice comes from Rand (xoshiro256**), written here and
//     seeded from the seed, never from math/rand, whose streams may change;
//   - every floating-point expression is a single IEEE-754 operation or
//     has an explicit float64 conversion between a product and a sum, so the
//     compiler cannot fuse it into a multiply-add (which it may do on arm64,
//     ppc64le, s390x and riscv64);
//   - no function of package math whose result could differ in the last bit
//     between implementations is used: c(n) sums the harmonic number in a
//     fixed order, and 2^x is computed by pow2 from basic operations;
//   - sums over trees run in tree order, and Fit starts no goroutine.
package iforest

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Params are a forest's parameters. Zero values take the defaults.
type Params struct {
	Trees      int // number of trees; default 100
	SampleSize int // psi, rows sampled per tree; default 256; min(psi, rows) is used
	MaxDepth   int // depth limit; 0 means ceil(log2(psi)), as scikit-learn
}

// Default parameter values.
const (
	DefaultTrees      = 100
	DefaultSampleSize = 256
)

// Errors returned by Fit; they are wrapped with detail.
var (
	ErrNoData    = errors.New("iforest: no data")
	ErrRagged    = errors.New("iforest: rows of unequal length")
	ErrNotFinite = errors.New("iforest: value not finite")
	ErrParams    = errors.New("iforest: bad parameters")
)

// Forest is a fitted isolation forest. It is immutable after Fit and safe
// for concurrent use by Score and PathLength.
//
// A forest over one feature is a step function of x: its value changes only
// at split thresholds. Fit therefore compiles such a forest into the sorted
// distinct thresholds and, for each interval between them, the sum of the
// trees' path lengths, added in tree order exactly as a walk down the trees
// adds them. Scoring is then a binary search, bit for bit equal to walking
// the trees, and the table takes half the memory of the nodes.
type Forest struct {
	nodes    []node  // every tree's nodes; a tree's root is nodes[roots[t]]; nil once compiled
	roots    []int32 // root index per tree; nil once compiled
	cuts     []float64
	sums     []float64 // sums[k]: path lengths summed over trees for x in (cuts[k-1], cuts[k]]
	trees    int
	features int
	psi      int
	cpsi     float64 // C(psi), the normaliser of the score
	maxDepth int
}

// node is an internal node (feat >= 0: go to left if x[feat] <= v, else to
// left+1) or a leaf (feat < 0: v is the path length there, depth + C(size)).
type node struct {
	v    float64
	feat int32
	left int32
}

// Fit builds a forest from data (rows x features), seeding every random
// choice from seed. It refuses empty data, fewer than two rows, rows of
// unequal length and values that are NaN or infinite.
func Fit(data [][]float64, p Params, seed [32]byte) (*Forest, error) {
	f, err := fit(data, p, seed)
	if err != nil {
		return nil, err
	}
	if f.features == 1 {
		f.compile()
	} else {
		f.nodes = slices.Clone(f.nodes) // drop the capacity reserved for the worst case
	}
	return f, nil
}

// fit builds the trees; Fit compiles one-feature forests afterwards.
func fit(data [][]float64, p Params, seed [32]byte) (*Forest, error) {
	if len(data) == 0 {
		return nil, ErrNoData
	}
	if len(data) < 2 {
		return nil, fmt.Errorf("%w: need at least 2 rows, have %d", ErrNoData, len(data))
	}
	nf := len(data[0])
	if nf == 0 {
		return nil, fmt.Errorf("%w: rows have no features", ErrNoData)
	}
	if nf > math.MaxInt32 || len(data) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d rows of %d features are too many", ErrParams, len(data), nf)
	}
	for i, row := range data {
		if len(row) != nf {
			return nil, fmt.Errorf("%w: row %d has %d values, row 0 has %d", ErrRagged, i, len(row), nf)
		}
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%w: row %d, feature %d is %v", ErrNotFinite, i, j, v)
			}
		}
	}
	trees, psi, depth := p.Trees, p.SampleSize, p.MaxDepth
	switch {
	case trees < 0:
		return nil, fmt.Errorf("%w: Trees is %d, must not be negative", ErrParams, trees)
	case psi < 0 || psi == 1:
		return nil, fmt.Errorf("%w: SampleSize is %d, must be 0 (default) or at least 2", ErrParams, psi)
	case depth < 0:
		return nil, fmt.Errorf("%w: MaxDepth is %d, must not be negative", ErrParams, depth)
	}
	if trees == 0 {
		trees = DefaultTrees
	}
	if psi == 0 {
		psi = DefaultSampleSize
	}
	psi = min(psi, len(data))
	if depth == 0 {
		depth = bits.Len(uint(psi - 1)) // ceil(log2(psi)) for psi >= 2
	}
	if int64(trees)*int64(2*psi) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d trees of %d samples are too many nodes", ErrParams, trees, psi)
	}

	f := &Forest{
		roots:    make([]int32, trees),
		trees:    trees,
		features: nf,
		psi:      psi,
		maxDepth: depth,
	}
	// Column-major copy: the builder scans one feature of many rows.
	cols := make([][]float64, nf)
	flat := make([]float64, nf*len(data))
	for j := range cols {
		cols[j] = flat[j*len(data) : (j+1)*len(data)]
		for i, row := range data {
			cols[j][i] = row[j]
		}
	}
	b := &builder{
		cols:   cols,
		f:      f,
		ctab:   cTable(psi),
		lo:     make([]float64, nf),
		hi:     make([]float64, nf),
		usable: make([]int32, 0, nf),
	}
	f.cpsi = b.ctab[psi]
	f.nodes = make([]node, 0, trees*estimateNodes(psi, depth))

	perm := make([]int32, len(data))
	for i := range perm {
		perm[i] = int32(i)
	}
	sample := make([]int32, psi)
	swaps := make([]int32, psi)
	master := NewRand(seed)
	for t := range trees {
		b.rng = master.fork()
		// Partial Fisher-Yates: perm[:psi] becomes a uniform sample without
		// replacement. The swaps are undone afterwards so that every tree
		// starts from the identity permutation at O(psi) cost.
		for i := range psi {
			j := i + b.rng.Intn(len(perm)-i)
			swaps[i] = int32(j)
			perm[i], perm[j] = perm[j], perm[i]
		}
		copy(sample, perm[:psi])
		for i := psi - 1; i >= 0; i-- {
			j := swaps[i]
			perm[i], perm[j] = perm[j], perm[i]
		}
		root := int32(len(f.nodes))
		f.roots[t] = root
		f.nodes = append(f.nodes, node{})
		b.build(sample, 0, root)
	}
	return f, nil
}

// estimateNodes guesses a tree's node count to size the node slice once.
func estimateNodes(psi, depth int) int {
	n := 2*psi - 1
	if depth < 30 && (2<<depth)-1 < n {
		n = (2 << depth) - 1
	}
	return n
}

type builder struct {
	cols   [][]float64 // the data by feature
	f      *Forest
	rng    *Rand
	ctab   []float64
	lo, hi []float64 // per-feature minimum and maximum of the current node
	usable []int32   // features that are not constant in the current node
}

// build grows the subtree of the rows idx at depth into the node slot. The
// two children of a split are allocated next to each other.
func (b *builder) build(idx []int32, depth int, slot int32) {
	f := b.f
	if depth >= f.maxDepth || len(idx) <= 1 {
		b.leaf(slot, depth, len(idx))
		return
	}
	for j, col := range b.cols {
		lo, hi := col[idx[0]], col[idx[0]]
		for _, i := range idx[1:] {
			v := col[i]
			lo = min(lo, v)
			hi = max(hi, v)
		}
		b.lo[j], b.hi[j] = lo, hi
	}
	// As scikit-learn's random splitter, a feature that is constant in the
	// node is never chosen; a node where all are constant is a leaf.
	b.usable = b.usable[:0]
	for j := range b.lo {
		if b.lo[j] < b.hi[j] {
			b.usable = append(b.usable, int32(j))
		}
	}
	if len(b.usable) == 0 {
		b.leaf(slot, depth, len(idx))
		return
	}
	feat := b.usable[0]
	if len(b.usable) > 1 {
		feat = b.usable[b.rng.Intn(len(b.usable))]
	}
	lo, hi := b.lo[feat], b.hi[feat]
	thr := splitPoint(lo, hi, b.rng.Float64())

	// Partition in place: rows with x <= thr first. Because lo <= thr < hi
	// both sides are non-empty.
	col := b.cols[feat]
	k := 0
	for i := range idx {
		if col[idx[i]] <= thr {
			idx[i], idx[k] = idx[k], idx[i]
			k++
		}
	}
	left := int32(len(f.nodes))
	f.nodes = append(f.nodes, node{}, node{})
	f.nodes[slot] = node{v: thr, feat: feat, left: left}
	b.build(idx[:k], depth+1, left)
	b.build(idx[k:], depth+1, left+1)
}

func (b *builder) leaf(slot int32, depth, size int) {
	b.f.nodes[slot] = node{v: float64(depth) + b.ctab[size], feat: -1}
}

// splitPoint returns lo + u*(hi-lo) for u in [0, 1), kept in [lo, hi) as
// scikit-learn does (a draw that rounds up to hi becomes lo). The product is
// converted before the sum so that it cannot be fused.
func splitPoint(lo, hi, u float64) float64 {
	d := hi - lo
	var t float64
	if math.IsInf(d, 0) { // lo and hi near opposite ends of the float range
		t = float64(lo*(1-u)) + float64(hi*u)
	} else {
		t = lo + float64(u*d)
	}
	if !(t >= lo && t < hi) {
		t = lo
	}
	return t
}

// Score returns the anomaly score s(x) = 2^(-E(h(x))/c(psi)) in (0, 1]:
// near 1 for anomalies, about 0.5 or below for ordinary points. x must have
// as many values as the training rows (Score panics otherwise); a NaN
// value takes the right branch at every split.
func (f *Forest) Score(x []float64) float64 {
	e := f.PathLength(x)
	if f.cpsi == 0 {
		return 1
	}
	return pow2(-(e / f.cpsi))
}

// PathLength returns E(h(x)), the mean over trees of the path length of x,
// with c(size) added at the external node as in the paper.
func (f *Forest) PathLength(x []float64) float64 {
	if len(x) != f.features {
		panic(fmt.Sprintf("iforest: Score of %d values, the forest has %d features", len(x), f.features))
	}
	var sum float64
	if f.sums != nil {
		sum = f.sums[f.interval(x[0])]
	} else {
		sum = f.walk(x)
	}
	return sum / float64(f.trees)
}

// interval returns the k with cuts[k-1] < v <= cuts[k] (k = len(cuts) if v
// is above every cut or NaN, as a walk takes the right branch then).
func (f *Forest) interval(v float64) int {
	lo, hi := 0, len(f.cuts)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if v <= f.cuts[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// walk sums the path lengths of x over the trees, in tree order.
func (f *Forest) walk(x []float64) float64 {
	nodes := f.nodes
	sum := 0.0
	for _, i := range f.roots {
		n := &nodes[i]
		for n.feat >= 0 {
			j := n.left
			if !(x[n.feat] <= n.v) { // written so the compiler can avoid a branch
				j++
			}
			n = &nodes[j]
		}
		sum += n.v
	}
	return sum
}

// compile turns a one-feature forest into its step function (see Forest)
// and drops the nodes. sums[k] starts at 0 and each tree, in order, adds
// the value of the leaf covering interval k: the same additions, in the
// same order, as walk makes for any x in that interval.
func (f *Forest) compile() {
	var cuts []float64
	for _, n := range f.nodes {
		if n.feat >= 0 {
			cuts = append(cuts, n.v)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts) // -0 and +0 compare equal and split alike
	cuts = slices.Clip(cuts)
	sums := make([]float64, len(cuts)+1)
	var visit func(i int32, lo, hi int)
	visit = func(i int32, lo, hi int) {
		n := &f.nodes[i]
		if n.feat < 0 {
			for k := lo; k <= hi; k++ {
				sums[k] += n.v
			}
			return
		}
		p, _ := slices.BinarySearch(cuts, n.v)
		visit(n.left, lo, p)
		visit(n.left+1, p+1, hi)
	}
	for _, r := range f.roots {
		visit(r, 0, len(cuts))
	}
	f.cuts, f.sums = cuts, sums
	f.nodes, f.roots = nil, nil
}

// Trees returns the number of trees.
func (f *Forest) Trees() int { return f.trees }

// SampleSize returns psi, the number of rows each tree was grown from.
func (f *Forest) SampleSize() int { return f.psi }

// Features returns the number of values per row.
func (f *Forest) Features() int { return f.features }

// Bytes returns about how much memory the forest holds.
func (f *Forest) Bytes() int {
	return 16*len(f.nodes) + 4*len(f.roots) + 8*(len(f.cuts)+len(f.sums)) + 128
}

// C returns c(n), the average path length of an unsuccessful search in a
// binary search tree of n nodes: 2H(n-1) - 2(n-1)/n, with C(0) = C(1) = 0
// and C(2) = 1 as scikit-learn. H is summed exactly as written, 1/1 + 1/2 +
// ... in that order, so the value is the same on every machine (scikit-learn
// approximates H(n) by ln(n) + 0.5772..., which differs by about 1/(2n)).
func C(n int) float64 {
	if n <= 1 {
		return 0
	}
	h := 0.0
	for i := 1; i < n; i++ {
		h += 1 / float64(i)
	}
	return cFromH(h, n)
}

func cFromH(h float64, n int) float64 {
	if n == 2 {
		return 1
	}
	return float64(2*h) - float64(2*(n-1))/float64(n)
}

// cTable returns C(0..n), computed exactly as C computes each.
func cTable(n int) []float64 {
	t := make([]float64, n+1)
	h := 0.0
	for i := 2; i <= n; i++ {
		h += 1 / float64(i-1)
		t[i] = cFromH(h, i)
	}
	return t
}

// pow2 returns 2^x for x <= 0 (and moderate x > 0) from basic IEEE-754
// operations only: x = k + r with k the nearest integer, 2^r = e^(r ln 2)
// by its Taylor series in Horner form (|r ln 2| <= 0.35, so 18 terms are
// far beyond double precision), scaled by 2^k with Ldexp, which is exact
// for normal results. Every product is converted before it is added, so no
// multiply-add can be fused. math.Exp2 is not used: its last bit is not
// promised to be the same on every architecture.
func pow2(x float64) float64 {
	if x != x {
		return x
	}
	if x < -1074 {
		return 0
	}
	k := math.Round(x) // exact: rounding to an integer is a bit operation
	y := float64((x - k) * math.Ln2)
	p := 1.0
	for i := 18; i >= 1; i-- {
		p = float64(float64(y*p)/float64(i)) + 1
	}
	return math.Ldexp(p, int(k))
}
