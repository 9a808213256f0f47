package noise

import (
	"io"

	fnoise "github.com/flynn/noise"

	"github.com/skyfleet/skywire/cipher"
)

// secp256k1DH is the Noise DH function over secp256k1: public keys are 33-byte
// compressed points (so DHLen, which flynn/noise uses as the public key
// length on the wire, is 33) and DH output is cipher.ECDH, SHA-256 of the
// shared compressed point (32 bytes).
type secp256k1DH struct{}

func (secp256k1DH) GenerateKeypair(rng io.Reader) (fnoise.DHKey, error) {
	pk, sk, err := cipher.GenerateKeyPairFrom(rng)
	if err != nil {
		return fnoise.DHKey{}, err
	}
	return fnoise.DHKey{Private: sk.Bytes(), Public: pk[:]}, nil
}

// DH rejects keys that are not valid points, so an invalid-curve or null key
// from the peer fails the handshake.
func (secp256k1DH) DH(private, public []byte) ([]byte, error) {
	sk, err := cipher.SecKeyFromBytes(private)
	if err != nil {
		return nil, err
	}
	pk, err := cipher.PubKeyFromBytes(public)
	if err != nil {
		return nil, err
	}
	shared, err := cipher.ECDH(sk, pk)
	if err != nil {
		return nil, err
	}
	return shared[:], nil
}

func (secp256k1DH) DHLen() int     { return cipher.PubKeySize }
func (secp256k1DH) DHName() string { return "secp256k1" }
