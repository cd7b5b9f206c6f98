package ledger

import (
	"errors"
	"fmt"

	"cissan/internal/event"
	"cissan/internal/store"
)

// Found is a logged event that Find returns.
type Found struct {
	// Version is 1 for the first event logged under its uid and device,
	// 2 for another content the device sent under that uid through a
	// second hub, and so on (see event.VersionKey).
	Version int
	At      store.Located
	Entry   *event.Entry
	Raw     []byte // entry bytes
}

// Find returns the events logged under uid, in device order and then in
// chain order: only device deviceUID's if it is not "", and only version
// version if it is not 0. An event's identity is its uid and device, so
// one uid may name events of several devices.
func (l *Ledger) Find(uid, deviceUID string, version int) ([]Found, error) {
	var logged []store.Logged
	if deviceUID == "" {
		var err error
		if logged, err = l.st.LocateUID(uid); err != nil {
			return nil, err
		}
	} else {
		locs, err := l.st.Locate(event.ID(uid, deviceUID))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if len(locs) > 0 {
			logged = []store.Logged{{DeviceUID: deviceUID, At: locs}}
		}
	}
	var out []Found
	for _, lg := range logged {
		for i, loc := range lg.At {
			if version != 0 && version != i+1 {
				continue
			}
			raw, err := l.st.Entry(loc.Height, loc.Index)
			if err != nil {
				return nil, fmt.Errorf("read block %d entry %d: %w", loc.Height, loc.Index, err)
			}
			en, err := event.DecodeEntry(raw, l.limits)
			if err != nil {
				return nil, fmt.Errorf("block %d entry %d: %w", loc.Height, loc.Index, err)
			}
			out = append(out, Found{Version: i + 1, At: loc, Entry: en, Raw: raw})
		}
	}
	return out, nil
}
