package hub

import (
	"errors"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Listener ids in the broker.
const (
	plainListener = "tcp"
	tlsListener   = "tls"
)

// addListeners adds the plain listener (unless MQTTAddr is "") and the TLS
// one (when TLS is configured); a hub needs at least one.
func (h *Hub) addListeners(s *mqtt.Server) error {
	add := func(id, what, addr, flag string, c listeners.Config) error {
		c.ID, c.Address = id, addr
		if err := s.AddListener(&deadlineListener{TCP: listeners.NewTCP(c), timeout: h.cfg.Guards.ConnectTimeout}); err != nil {
			return fmt.Errorf("hub %s: %s listener on %s: %w (change %s)", h.cfg.ID, what, addr, err, flag)
		}
		return nil
	}
	tlsOn := h.cfg.TLS != nil && h.cfg.MQTTSAddr != ""
	if h.cfg.MQTTAddr == "" && !tlsOn {
		return errors.New("hub " + h.cfg.ID + ": no MQTT listener: --mqtt-addr is empty and there is no TLS listener (--mqtts-addr with --tls-cert, --tls-key)")
	}
	if h.cfg.MQTTAddr != "" {
		if err := add(plainListener, "MQTT", h.cfg.MQTTAddr, "--mqtt-addr", listeners.Config{}); err != nil {
			return err
		}
	}
	if tlsOn {
		if err := s.AddHook(&certHook{h: h, s: s}, nil); err != nil {
			return fmt.Errorf("hub %s: client certificate hook: %w", h.cfg.ID, err)
		}
		return add(tlsListener, "MQTT over TLS", h.cfg.MQTTSAddr, "--mqtts-addr", listeners.Config{TLSConfig: h.cfg.TLS})
	}
	return nil
}

// MQTTSAddr returns the address of the MQTT over TLS listener, "" if none.
func (h *Hub) MQTTSAddr() string { return h.listenerAddr(tlsListener) }

func (h *Hub) listenerAddr(id string) string {
	if h.mqtt == nil {
		return ""
	}
	if l, ok := h.mqtt.Listeners.Get(id); ok {
		return l.Address()
	}
	return ""
}
