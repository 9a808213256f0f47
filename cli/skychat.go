package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	ucli "github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/apps/sdk"
	"github.com/skyfleet/skywire/apps/skychat"
)

// skychatApp is the skychat role (port 1): the chat, and its web UI.
func skychatApp(e env) *ucli.App {
	return &ucli.App{
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "addr", Value: "127.0.0.1:8001", Usage: "the web UI's `address` (keep it on loopback: the UI answers only there)"},
			&ucli.StringFlag{Name: "history", Value: "history", Usage: "the `directory` of the conversations (relative to the app's working directory)"},
			&ucli.IntFlag{Name: "rate", Value: skychat.DefaultRate, Usage: "messages a second each peer may send (after a burst of twice as many); more are refused"},
		}, logFlags()...),
		Action: func(c *ucli.Context) error {
			return runApp(c, e, "skychat", func(ctx context.Context, client *sdk.Client, log *zap.Logger) error {
				chat, err := skychat.New(client, c.String("history"), log)
				if err != nil {
					return err
				}
				defer chat.Close()
				chat.SetRate(c.Int("rate"))
				l, err := client.Listen(client.Port())
				if err != nil {
					return err
				}
				defer l.Close()
				hl, err := net.Listen("tcp", c.String("addr"))
				if err != nil {
					return fmt.Errorf("--addr: %w (is another skychat running? pick another address)", err)
				}
				srv := &http.Server{Handler: skychat.Handler(chat, client.Visor()), ReadHeaderTimeout: 10 * time.Second}
				errc := make(chan error, 2)
				go func() { errc <- chat.Serve(ctx, l) }()
				go func() {
					if err := srv.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
						errc <- err
					}
				}()
				url := "http://" + hl.Addr().String()
				log.Info("chat UI", zap.String("url", url))
				client.SetStatus("chat UI on " + url)
				select {
				case <-ctx.Done():
				case err = <-errc:
				}
				sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				srv.Shutdown(sctx)
				srv.Close()
				return err
			})
		},
	}
}
