package hub

import (
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"
)

// DiskGuard says whether the hub's disk has room for new events: nil, or
// why not (diskspace.Watcher is one).
type DiskGuard interface {
	Err() error
}

// codeDiskLow is the PUBACK reason code of an event refused because the
// hub's disk is low: 0x97, quota exceeded (MQTT 5, section 3.4.2.1).
var codeDiskLow = packets.ErrQuotaExceeded.Code

// diskLowReason starts the reason string of such a refusal.
const diskLowReason = "hub disk space low"

// diskRefusal refuses every event while the hub's free disk space is below
// its threshold, before the event is looked up or stored: a retransmit of
// an event the hub already holds is refused too, which loses nothing (the
// event stays pooled or logged, and the device sends it again later), and
// keeps a low hub from doing any work per event but this check.
func (h *Hub) diskRefusal() error {
	if h.cfg.Disk == nil {
		return nil
	}
	if err := h.cfg.Disk.Err(); err != nil {
		return refuse(codeDiskLow, "%s (%v); event not stored, send it again later", diskLowReason, err)
	}
	return nil
}

// isDiskRefusal reports whether code refused an event for lack of disk
// space, rather than another quota.
func isDiskRefusal(code packets.Code) bool {
	return code.Code == codeDiskLow && strings.HasPrefix(code.Reason, diskLowReason)
}
