package ledger

import (
	"fmt"

	"cissan/internal/analyze"
	"cissan/internal/chain"
)

// ConfigChange is an analyzer configuration recorded on the chain. It
// decides the tags of the block that carries it and of every block after,
// until the next change.
type ConfigChange struct {
	Height uint64 // block that carries it
	Raw    []byte // the configuration JSON as recorded
	Config analyze.Config
}

// AnalyzersFor returns the analyzers that decide the tags of a block with
// the given control records (see NextAnalyzers), starting from the ones in
// force. Only the goroutine that appends blocks may use the set it returns.
func (l *Ledger) AnalyzersFor(controls [][]byte) (analyze.Set, *analyze.Config, error) {
	return NextAnalyzers(l.an, controls)
}

// NextAnalyzers returns the analyzers that decide the tags of a block with
// the given control records: fresh ones built from an analyzer
// configuration the block carries (and that configuration), else cur. It
// refuses control records whose contents no node could apply.
func NextAnalyzers(cur analyze.Set, controls [][]byte) (analyze.Set, *analyze.Config, error) {
	set, cfg := cur, (*analyze.Config)(nil)
	for i, raw := range controls {
		c, err := chain.DecodeControl(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("control record %d: %w", i, err)
		}
		if c.Kind != chain.ControlAnalyzers {
			continue
		}
		parsed, err := analyze.ParseConfig(c.Body)
		if err != nil {
			return nil, nil, fmt.Errorf("control record %d: %w", i, err)
		}
		if set, err = parsed.Build(); err != nil {
			return nil, nil, fmt.Errorf("control record %d: %w", i, err)
		}
		cfg = &parsed
	}
	return set, cfg, nil
}

// NextNetwork returns the network after block h with the given control
// records: cur with the hubs they enrol, each from block h+1 on. It
// refuses an enrolment that conflicts with cur.
func NextNetwork(cur *chain.Network, h uint64, controls [][]byte) (*chain.Network, error) {
	for i, raw := range controls {
		c, err := chain.DecodeControl(raw)
		if err != nil {
			return nil, fmt.Errorf("control record %d: %w", i, err)
		}
		if c.Kind != chain.ControlEnrolHub {
			continue
		}
		e, key, err := chain.ParseEnrolment(c.Body)
		if err != nil {
			return nil, fmt.Errorf("control record %d: %w", i, err)
		}
		if cur, err = cur.Enrol(e.ID, key, h+1); err != nil {
			return nil, fmt.Errorf("control record %d: %w", i, err)
		}
	}
	return cur, nil
}

// useControls puts block h's control records in force: its analyzer
// configuration before its entries advance the analyzers' state, its hub
// enrolments for the blocks after it.
func (l *Ledger) useControls(h uint64, controls [][]byte) error {
	set, cfg, err := l.AnalyzersFor(controls)
	if err != nil {
		return err
	}
	net, err := NextNetwork(l.Network(), h, controls)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.net = net
	if cfg != nil {
		l.an = set
		l.configs = append(l.configs, ConfigChange{Height: h, Raw: cfg.Encode(), Config: *cfg})
	}
	return nil
}

// recoverControls puts the chain's control records in force again: the
// hubs they enrol, and the analyzers, through which it then replays the
// blocks since the last configuration, unless they keep no state.
func (l *Ledger) recoverControls(height uint64) error {
	err := l.st.EachControl(func(h uint64, raw []byte) error {
		if h >= height {
			return nil // not part of the chain; verify data reports it
		}
		return l.useControls(h, [][]byte{raw})
	})
	if err != nil {
		return err
	}
	if l.an.Stateless() {
		return nil
	}
	from := uint64(0)
	if n := len(l.configs); n > 0 {
		from = l.configs[n-1].Height
	}
	for h := from; h < height; h++ {
		blk, entries, err := l.load(h)
		if err != nil {
			return err
		}
		l.an.Apply(analyze.Block{Height: h, Hash: blk.Header.Hash(), Entries: entries})
	}
	return nil
}

// Configs returns the analyzer configurations recorded on the chain, oldest
// first.
func (l *Ledger) Configs() []ConfigChange {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return append([]ConfigChange(nil), l.configs...)
}
