package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cissan/internal/registry"
	"cissan/internal/sim"
)

// runSimulate registers devices (or issues new tokens to existing ones)
// and publishes sensor events from each over MQTT at a total rate.
func runSimulate(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	api := fs.String("api", "http://127.0.0.1:8080", "API base URL (registry)")
	tokenFile := fs.String("token-file", "./data/admin.token", "operator token file (CISSAN_TOKEN overrides)")
	mqttAddrs := fs.String("mqtt", "127.0.0.1:1883", "comma-separated hub MQTT addresses; devices are spread over them")
	devices := fs.Int("devices", 5, "number of devices")
	namespace := fs.String("namespace", "demo/sensors", "namespace of the devices")
	prefix := fs.String("prefix", "sim", "device uid prefix (devices are PREFIX-1 ... PREFIX-N)")
	rate := fs.Float64("rate", 10, "events per second, all devices together")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted or --count)")
	count := fs.Int("count", 0, "stop after this many events (0: no limit)")
	useTLS := fs.Bool("tls", false, "connect to the --mqtt addresses over TLS (the hubs' --mqtts-addr)")
	cacert := fs.String("cacert", "", cacertUsage+"; with --tls, also of the hubs' MQTT")
	if _, err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *devices < 1 || *rate <= 0 {
		return usagef("--devices must be at least 1 and --rate positive")
	}
	tok, err := operatorToken(*tokenFile)
	if err != nil {
		return err
	}
	addrs := strings.Split(*mqttAddrs, ",")
	hc, err := apiClient(*cacert)
	if err != nil {
		return err
	}
	reg := &registry.Client{BaseURL: *api, Token: tok, HTTP: hc}
	var mqttTLS *tls.Config
	if *useTLS {
		if mqttTLS, err = clientTLS(*cacert); err != nil {
			return err
		}
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	devs := make([]*sim.Device, 0, *devices)
	defer func() {
		for _, d := range devs {
			d.Close()
		}
	}()
	for i := 1; i <= *devices; i++ {
		uid := fmt.Sprintf("%s-%d", *prefix, i)
		_, token, err := reg.Add(ctx, *namespace, uid)
		if ae := (*registry.APIError)(nil); errors.As(err, &ae) && ae.StatusCode == http.StatusConflict {
			// Registered by an earlier run: issue a new token.
			_, token, err = reg.Rotate(ctx, uid)
		}
		if err != nil {
			return fmt.Errorf("register %s: %w", uid, err)
		}
		d, err := sim.DialTLS(ctx, strings.TrimSpace(addrs[(i-1)%len(addrs)]), mqttTLS, uid, *namespace, token)
		if err != nil {
			return err
		}
		devs = append(devs, d)
	}
	fmt.Fprintf(env.Stderr, "simulating %d devices in %s at %.1f events/s over %s\n", len(devs), *namespace, *rate, strings.Join(addrs, ","))

	var sent, ok, refused atomic.Int64
	var mu sync.Mutex
	reasons := map[string]int{}
	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	start := time.Now()
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
loop:
	for i := 0; *count == 0 || i < *count; i++ {
	wait:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-progress.C:
				fmt.Fprintf(env.Stderr, "%s: %d published, %d acknowledged, %d refused\n", time.Since(start).Round(time.Second), sent.Load(), ok.Load(), refused.Load())
			case <-tick.C:
				break wait
			}
		}
		d := devs[i%len(devs)]
		wg.Add(1)
		sent.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			r, err := d.PublishEvent(pctx, time.Now())
			switch {
			case err != nil:
				refused.Add(1)
				mu.Lock()
				reasons["transport: "+err.Error()]++
				mu.Unlock()
			case r.OK():
				ok.Add(1)
			default:
				refused.Add(1)
				mu.Lock()
				reasons[fmt.Sprintf("0x%02x %s", r.Code, r.Reason)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Fprintf(env.Stdout, "published %d events in %s: %d acknowledged, %d refused\n", sent.Load(), time.Since(start).Round(time.Millisecond), ok.Load(), refused.Load())
	for r, n := range reasons {
		fmt.Fprintf(env.Stdout, "  %d x %s\n", n, r)
	}
	if refused.Load() > 0 {
		return fmt.Errorf("simulate: %d events refused", refused.Load())
	}
	return nil
}
