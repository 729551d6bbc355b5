package auth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// claims are the few JWT claims read without verifying the signature. They
// are used only to explain a rejection the TokenReview already made (wrong
// audience, expired) and to stop caching an accepted token past its expiry;
// they never decide that a token is valid.
type claims struct {
	Issuer   string   `json:"iss"`
	Audience audience `json:"aud"`
	Expiry   int64    `json:"exp"`
}

// header is the JOSE header of a JWT.
type header struct {
	Alg string `json:"alg"`
}

type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// peekClaims decodes the payload of a JWT; ok is false for anything that is
// not one (a static or bootstrap token, garbage).
func peekClaims(token string) (c claims, ok bool) {
	_, c, ok = peekJWT(token)
	return c, ok
}

// peekJWT decodes the header and payload of a compact JWT without verifying
// anything; ok is false unless both are base64url JSON objects.
func peekJWT(token string) (h header, c claims, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return header{}, claims{}, false
	}
	if !decodeSegment(parts[0], &h) || !decodeSegment(parts[1], &c) {
		return header{}, claims{}, false
	}
	return h, c, true
}

func decodeSegment(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	return err == nil && json.Unmarshal(b, v) == nil
}

func (c claims) expiry() (time.Time, bool) {
	if c.Expiry == 0 {
		return time.Time{}, false
	}
	return time.Unix(c.Expiry, 0), true
}

func intersects(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}
