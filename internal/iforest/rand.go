package iforest

import (
	"encoding/binary"
	"math/bits"
)

// Rand is xoshiro256** (Blackman and Vigna, 2018), written here because the
// streams of math/rand and math/rand/v2 are not a stable contract and a
// forest must be the same on every machine for ever. Its output depends
// only on the seed; it is not safe for concurrent use.
type Rand struct{ s [4]uint64 }

// NewRand returns a generator seeded from 32 bytes, typically a SHA-256 of
// chain data. Each big-endian word of the seed goes through the splitmix64
// finalizer with a distinct increment, so no seed yields the all-zero state
// in practice and similar seeds yield unrelated streams.
func NewRand(seed [32]byte) *Rand {
	r := &Rand{}
	for i := range r.s {
		w := binary.BigEndian.Uint64(seed[8*i:])
		r.s[i] = mix64(w + uint64(i+1)*0x9e3779b97f4a7c15)
	}
	if r.s == [4]uint64{} {
		r.s[0] = 1 // the one state xoshiro cannot leave
	}
	return r
}

// mix64 is the splitmix64 finalizer, a bijection on uint64.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Uint64 returns the next 64 random bits.
func (r *Rand) Uint64() uint64 {
	s := &r.s
	out := bits.RotateLeft64(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = bits.RotateLeft64(s[3], 45)
	return out
}

// Float64 returns a uniform value in [0, 1) with 53 random bits; the
// conversion and the scaling by a power of two are exact. The explicit
// conversion keeps a caller's inlined sum from fusing with the product.
func (r *Rand) Float64() float64 {
	return float64(float64(r.Uint64()>>11) * 0x1p-53)
}

// Intn returns a uniform value in [0, n) by Lemire's multiply-and-reject
// method, without bias. It panics if n <= 0.
func (r *Rand) Intn(n int) int {
	if n <= 0 {
		panic("iforest: Intn argument must be positive")
	}
	bound := uint64(n)
	hi, lo := bits.Mul64(r.Uint64(), bound)
	if lo < bound {
		thresh := -bound % bound
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), bound)
		}
	}
	return int(hi)
}

// fork returns a generator for a sub-task (one tree), seeded from four
// outputs of r, so that each tree has its own stream.
func (r *Rand) fork() *Rand {
	c := &Rand{}
	for i := range c.s {
		c.s[i] = mix64(r.Uint64())
	}
	if c.s == [4]uint64{} {
		c.s[0] = 1
	}
	return c
}
