package event

// CheckDeviceUID checks s against the rule a device_uid obeys in an event:
// 1..128 bytes of A-Z a-z 0-9 - _ . :. The registry applies it when a device
// is added, so that every registered device can publish events under its
// own name.
func CheckDeviceUID(s string) error {
	return checkIdent("device_uid", s, DefaultLimits().MaxDeviceLen)
}

// ID returns an event's identity in the log: its uid within its device,
// written "uid/device_uid". Identifiers never hold '/', so the two parts
// are unambiguous, and every event of one uid shares the prefix "uid/".
//
// Uids are scoped to their device so that no device can have another's
// events refused by using their uids first.
func ID(uid, deviceUID string) string { return uid + "/" + deviceUID }

// ID returns the event's identity (see ID).
func (e *Event) ID() string { return ID(e.UID, e.DeviceUID) }

// VersionKey names one version of an event: its ID, '/', and its content
// hash (ContentHash, 32 bytes). A device that sends two contents under one
// uid through two hubs at once has both acknowledged, and the network logs
// both; pools hold each version under its own key.
func VersionKey(id string, content [32]byte) string {
	return id + "/" + string(content[:])
}

// SplitVersionKey returns the ID and content hash of a VersionKey.
func SplitVersionKey(k string) (id string, content [32]byte, ok bool) {
	n := len(k) - len(content) - 1
	if n < 3 || k[n] != '/' {
		return "", content, false
	}
	copy(content[:], k[n+1:])
	return k[:n], content, true
}
