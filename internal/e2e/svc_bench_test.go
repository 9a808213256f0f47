//go:build linux

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/dmsgdisc"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

// BenchmarkServiceRSS measures the resident memory of each discovery run
// alone as a process (`skywire svc dmsg-discovery`, `svc
// transport-discovery`, memory store): idle, and holding 10,000 entries
// registered through its HTTP API as visors register them (dmsg entries;
// transports signed by both edges), with the RSS each entry added.
func BenchmarkServiceRSS(b *testing.B) {
	const entries = 10_000
	for _, svc := range []string{"dmsg-discovery", "transport-discovery"} {
		b.Run(svc, func(b *testing.B) {
			addr := fmt.Sprintf("127.0.0.1:%d", freePorts(b, 1)[0])
			p := start(b, "skywire", "svc", svc, "--addr", addr, "--log-level", "warn")
			url := "http://" + addr
			waitHTTP(b, p, url+"/health")
			idle := rssMiB(b, p.cmd.Process.Pid)
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < entries; i += 8 {
						pk, sk := cipher.GenerateKeyPair()
						var err error
						if svc == "dmsg-discovery" {
							c := dmsgdisc.NewClient(url, sk)
							err = c.Publish(ctx, func(e *dmsgdisc.Entry) { e.Client = &dmsgdisc.ClientInfo{DelegatedServers: []cipher.PubKey{pk}} })
							c.Close()
						} else {
							opk, osk := cipher.GenerateKeyPair()
							se := &tpdisc.SignedEntry{Entry: tpdisc.NewEntry(pk, opk, "stcpr")}
							for _, k := range []cipher.SecKey{sk, osk} {
								se.Sigs[se.Entry.EdgeIndex(k.PubKey())], _ = se.Entry.Sign(k)
							}
							c := tpdisc.NewClient(url, sk)
							err = c.Register(ctx, se)
							c.Close()
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			full := rssMiB(b, p.cmd.Process.Pid)
			for b.Loop() {
			}
			b.ReportMetric(idle, "MiB-RSS-idle")
			b.ReportMetric(full, "MiB-RSS-10k")
			b.ReportMetric((full-idle)*1024*1024/entries, "B-RSS/entry")
		})
	}
}
