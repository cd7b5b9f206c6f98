package cli

import (
	"flag"

	"cissan/internal/hub"
)

// addGuardFlags defines the flags of hub.Guards, for the commands that run
// hubs; zero values take the defaults hub.Guards documents.
func addGuardFlags(fs *flag.FlagSet) *hub.Guards {
	g := &hub.Guards{}
	fs.Float64Var(&g.DeviceRate, "device-max-rate", hub.DefaultDeviceRate, "events/s a device may send to a hub, unless the registry sets its own (cissan device limits)")
	fs.Float64Var(&g.DeviceBytes, "device-max-bytes-rate", hub.DefaultDeviceBytes, "payload bytes/s a device may send to a hub, unless the registry sets its own")
	fs.DurationVar(&g.ConnectTimeout, "mqtt-connect-timeout", hub.DefaultConnectTimeout, "time a new MQTT connection has to send its whole CONNECT, TLS handshake included")
	return g
}
