package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"cissan/internal/registry"
	"cissan/internal/sim"
)

// Remote says how to reach a network that runs elsewhere: its hubs'
// MQTT listeners, the API that answers for its chain (the master's, or
// `cissan up`'s), the registry's API if it is another, and the operator
// token both accept.
//
// Against a remote network the bench measures what a client can see:
// events/s from the first publish until the last acknowledged event is in
// a final block, publish-to-final latency (to within the status poll, 20
// ms), PUBACK latency, and lost and duplicated events, read back through
// the API's search. It cannot see the nodes' CPU, memory or disk, so those
// figures stay zero; CPU is the load generator's own (LoadCPUSecondsPer1k).
type Remote struct {
	MQTTAddrs   []string
	APIURL      string
	RegistryURL string // APIURL if empty
	Token       string
}

// remoteAPI is the little of the HTTP API the bench uses.
type remoteAPI struct {
	base, token string
	http        *http.Client
}

func (a *remoteAPI) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(a.base, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, e.Error)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

type remoteStatus struct {
	Height        uint64 `json:"height"`
	FinalHeight   uint64 `json:"final_height"`
	IndexedHeight uint64 `json:"indexed_height"`
	Events        uint64 `json:"events"` // in the chain
}

// deviceEvents lists every event the chain's index holds for a device:
// uid -> block heights (more than one if logged twice).
func (a *remoteAPI) deviceEvents(ctx context.Context, device string) (map[string][]uint64, error) {
	out := map[string][]uint64{}
	cursor := ""
	for {
		q := url.Values{"device": {device}, "limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Events []struct {
				UID    string `json:"uid"`
				Height uint64 `json:"block_height"`
			} `json:"events"`
			Next string `json:"next"`
		}
		if err := a.get(ctx, "/v1/events?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		for _, e := range page.Events {
			out[e.UID] = append(out[e.UID], e.Height)
		}
		if page.Next == "" {
			return out, nil
		}
		cursor = page.Next
	}
}

// runRemote runs the load against a network that runs elsewhere.
func runRemote(ctx context.Context, c Config, res *Result) error {
	r := c.Remote
	api := &remoteAPI{base: r.APIURL, token: r.Token, http: &http.Client{Timeout: 30 * time.Second}}
	regURL := r.RegistryURL
	if regURL == "" {
		regURL = r.APIURL
	}
	reg := &registry.Client{BaseURL: regURL, Token: r.Token, HTTP: api.http}
	var st0 remoteStatus
	if err := api.get(ctx, "/v1/status", &st0); err != nil {
		return fmt.Errorf("bench: remote network: %w", err)
	}

	// Fresh devices each run: the registry keeps the old ones.
	run := time.Now().UTC().Format("20060102-150405")
	var devs []*sim.Device
	defer func() {
		for _, d := range devs {
			d.Close()
		}
	}()
	for i := range c.Devices {
		uid := fmt.Sprintf("bench-%s-%d", run, i)
		_, tok, err := reg.Add(ctx, "bench/fleet", uid)
		if err != nil {
			return fmt.Errorf("bench: register %s: %w", uid, err)
		}
		d, err := sim.Dial(ctx, r.MQTTAddrs[i%len(r.MQTTAddrs)], uid, "bench/fleet", tok)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		devs = append(devs, d)
	}

	// When each block became final, from the status the API reports.
	var mu sync.Mutex
	finalAt := map[uint64]time.Time{}
	var status remoteStatus
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() {
		seen := st0.FinalHeight
		for wctx.Err() == nil {
			var s remoteStatus
			if err := api.get(wctx, "/v1/status", &s); err == nil {
				now := time.Now()
				mu.Lock()
				status = s
				for h := seen; h < s.FinalHeight; h++ {
					finalAt[h] = now
				}
				mu.Unlock()
				seen = max(seen, s.FinalHeight)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	c.say("remote network: %d devices over %d hub(s), %v", c.Devices, len(r.MQTTAddrs), c.Duration)
	rec, err := newRecord()
	if err != nil {
		return err
	}
	defer rec.close()
	cpu0 := cpuSeconds()
	start := time.Now()
	acked, refused, begin := load(ctx, devs, c.loadOpts(rec))
	loadCPU := cpuSeconds() - cpu0
	res.Refused, res.Events = refused, acked
	byDevice := map[string]bool{}
	if err := rec.each(func(s sample) error {
		byDevice[devs[s.dev].UID] = true
		return nil
	}); err != nil {
		return err
	}

	// Wait until the chain holds as many new events as were acknowledged
	// and is final and indexed up to its head (search trails finality),
	// then read every device's events back; repeat while some are
	// missing. A pass over millions of events takes minutes: one that
	// started before the index had the last block, or before the last
	// events acknowledged had left the pools for a block, reported them
	// lost.
	deadline := time.Now().Add(2*time.Minute + 20*c.BlockInterval)
	var found map[string][]uint64
	var lastFinal time.Time
	for {
		mu.Lock()
		s := status
		mu.Unlock()
		inChain := s.Events >= st0.Events+uint64(acked)
		if inChain && s.Height > st0.Height && s.FinalHeight == s.Height && s.IndexedHeight == s.Height {
			found = map[string][]uint64{}
			for dev := range byDevice {
				evs, err := api.deviceEvents(ctx, dev)
				if err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				for uid, hs := range evs {
					found[uid] = hs
				}
			}
			missing := 0
			if err := rec.each(func(s sample) error {
				if len(found[s.uid(devs)]) == 0 {
					missing++
				}
				return nil
			}); err != nil {
				return err
			}
			if missing == 0 {
				lastFinal = time.Now()
				break
			}
		}
		if time.Now().After(deadline) {
			c.say("not every acknowledged event became final within the deadline")
			lastFinal = time.Now()
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	wcancel()
	if found == nil {
		return errors.New("bench: the remote chain never became final")
	}
	// The end is when the block of the last event became final, not when
	// the bench got round to reading it.
	var end time.Time
	var puback, final latencies
	var jsonBytes int
	mu.Lock()
	err = rec.each(func(s sample) error {
		jsonBytes += int(s.size)
		puback.add(s.pubackMs())
		hs := found[s.uid(devs)]
		if len(hs) == 0 {
			res.EventsLost++
			return nil
		}
		res.EventsDuplicated += len(hs) - 1
		at, ok := finalAt[hs[0]]
		if !ok {
			at = lastFinal
		}
		end = later(end, at)
		final.add(float64(at.Sub(s.sentAt(begin)).Microseconds()) / 1000)
		return nil
	})
	mu.Unlock()
	if err != nil {
		return err
	}
	if end.IsZero() {
		end = lastFinal
	}
	res.EventsPerSec = float64(acked) / end.Sub(start).Seconds()
	if res.BrokerOnlyPerSec > 0 {
		res.Ratio = res.EventsPerSec / res.BrokerOnlyPerSec
	}
	res.PubackP50, res.PubackP99 = puback.quantiles()
	res.PublishToFinalP50, res.PublishToFinalP99 = final.quantiles()
	if acked > 0 {
		res.EventJSONBytes = float64(jsonBytes) / float64(acked)
		res.LoadCPUSecondsPer1k = loadCPU / float64(acked) * 1000
	}
	res.Remote = true
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
