package ledger

import (
	"context"
	"fmt"
	"slices"

	"cissan/internal/event"
	"cissan/internal/index"
)

// Search returns one page of the events q selects, newest first, and the
// cursor of the next page ("" on the last). The index finds where the
// events are; their rows are read from the block store, the source of
// truth, and each is checked against q's exact filters (device,
// namespaces, time, key, tag). A row that fails them means the index no
// longer matches the chain: Search returns an error wrapping
// index.ErrCorrupt rather than show an event q did not ask for, which for
// a reader scoped to some namespaces would be another namespace's event.
func (l *Ledger) Search(ctx context.Context, q index.Query) ([]index.Row, string, error) {
	refs, next, err := l.idx.Search(ctx, q)
	if err != nil {
		return nil, "", err
	}
	rows := make([]index.Row, len(refs))
	mint := map[uint64]int64{} // mint time by height, read once per block
	for i, ref := range refs {
		m, ok := mint[ref.Height]
		if !ok {
			hdr, _, err := l.st.Header(ref.Height)
			if err != nil {
				return nil, "", fmt.Errorf("search: block %d: %w", ref.Height, err)
			}
			m = hdr.MintTimeMs
			mint[ref.Height] = m
		}
		raw, err := l.st.Entry(ref.Height, ref.Index)
		if err != nil {
			return nil, "", fmt.Errorf("search: block %d entry %d: %w", ref.Height, ref.Index, err)
		}
		en, err := event.DecodeEntry(raw, l.limits)
		if err != nil {
			return nil, "", fmt.Errorf("search: block %d entry %d: %w", ref.Height, ref.Index, err)
		}
		if why := mismatch(q, en); why != "" {
			return nil, "", fmt.Errorf("search: block %d entry %d: %w: found for %s, which the event does not match; reindex (cissan reindex)",
				ref.Height, ref.Index, index.ErrCorrupt, why)
		}
		rows[i] = index.RowOf(ref.Height, ref.Index, m, raw, en)
	}
	return rows, next, nil
}

// mismatch names the first of q's exact filters that en fails, or "".
// Text is left to the index: its meaning is the tokenizer's.
func mismatch(q index.Query, en *event.Entry) string {
	ev := &en.Event
	switch {
	case q.DeviceUID != "" && ev.DeviceUID != q.DeviceUID:
		return "a device"
	case q.Namespace != "" && ev.Namespace != q.Namespace:
		return "a namespace"
	case q.Namespaces != nil && !slices.Contains(q.Namespaces, ev.Namespace):
		return "the namespaces in scope"
	case q.From != 0 && ev.Timestamp < q.From, q.To != 0 && ev.Timestamp > q.To:
		return "a time range"
	case q.Key != "" && !slices.ContainsFunc(ev.Items, func(it event.Item) bool { return it.Key == q.Key }):
		return "an item key"
	case q.Tag != "" && !slices.ContainsFunc(en.Tags, func(t event.Tag) bool { return t.Label == q.Tag || t.Analyzer+":"+t.Label == q.Tag }):
		return "a tag"
	}
	return ""
}
