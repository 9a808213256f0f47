package vpn

import (
	"github.com/songgao/water"
)

// openTUN makes a TUN device named name (not persistent: it goes with the
// process, so a crash leaves no device).
func openTUN(name string) (tun, error) {
	ifc, err := water.New(water.Config{DeviceType: water.TUN, PlatformSpecificParams: water.PlatformSpecificParams{Name: name}})
	if err != nil {
		return nil, err
	}
	return ifc, nil
}
