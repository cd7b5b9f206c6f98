package event

// CheckDeviceUID checks s against the rule a device_uid obeys in an event:
// 1..128 bytes of A-Z a-z 0-9 - _ . :. The registry applies it when a device
// is added, so that every registered device can publish events under its
// own name.
func CheckDeviceUID(s string) error {
	return checkIdent("device_uid", s, DefaultLimits().MaxDeviceLen)
}
