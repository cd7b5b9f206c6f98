package master

import (
	"errors"
	"fmt"

	"cissan/internal/analyze"
	"cissan/internal/chain"
	"cissan/internal/store"
)

// pendingConfigKey holds an analyzer configuration waiting for the next
// block, so that a restart between the operator's request and the block
// does not lose it.
const pendingConfigKey = "pending-analyzers"

// SetAnalyzers queues an analyzer configuration for the next block, whose
// tags it decides, and those of the blocks after. A newer request replaces
// one still waiting.
func (m *Master) SetAnalyzers(raw []byte) error {
	cfg, err := analyze.ParseConfig(raw)
	if err != nil {
		return err
	}
	// A mint reads the pending configuration and deletes it with the
	// block; one in progress must not delete a newer one written meanwhile.
	m.mintMu.Lock()
	defer m.mintMu.Unlock()
	b := m.led.Store().NewBatch()
	defer b.Close()
	if err := b.PutMeta(pendingConfigKey, cfg.Encode()); err != nil {
		return err
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("queue analyzer config: %w", err)
	}
	m.log.Info("analyzer config queued for the next block")
	return nil
}

// PendingAnalyzers returns the configuration waiting for the next block,
// or nil.
func (m *Master) PendingAnalyzers() ([]byte, error) {
	raw, err := m.led.Store().Meta(pendingConfigKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return raw, err
}

// pendingControls returns the control records the next block carries.
func (m *Master) pendingControls() ([][]byte, error) {
	raw, err := m.PendingAnalyzers()
	if err != nil || raw == nil {
		return nil, err
	}
	return [][]byte{chain.Control{Kind: chain.ControlAnalyzers, Body: raw}.Encode()}, nil
}

// initAnalyzers queues the initial configuration when the chain has none
// yet, so that the first block puts it in force.
func (m *Master) initAnalyzers(initial *analyze.Config) error {
	if initial == nil || len(m.led.Configs()) > 0 {
		return nil
	}
	if p, err := m.PendingAnalyzers(); err != nil || p != nil {
		return err
	}
	return m.SetAnalyzers(initial.Encode())
}
