package gate

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodePayloadAcceptsFlaggersBodyAndIgnoresUnknownFields(t *testing.T) {
	// What Flagger v1.36 sends to a confirm-promotion hook, plus fields a
	// later version might add.
	body := `{"name":"web","namespace":"shop","phase":"Progressing","checksum":"6d8f7b9c",
		"metadata":{"policy":"drain-web","type":"confirm-promotion"},"future":{"x":[1,2]},"weight":10}`
	got, err := DecodePayload([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := Payload{Name: "web", Namespace: "shop", Phase: "Progressing", Checksum: "6d8f7b9c",
		Metadata: map[string]string{"policy": "drain-web", "type": "confirm-promotion"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestDecodePayloadRefusesBadBodiesWithTheReason(t *testing.T) {
	for _, tc := range []struct {
		name, body, reason string
	}{
		{"empty", "", "empty body"},
		{"blank", " \n\t", "empty body"},
		{"not JSON", "name=web", "malformed JSON"},
		{"truncated", `{"name":"web","namespace":`, "malformed JSON"},
		{"array", `[{"name":"web"}]`, "must be a JSON object"},
		{"string", `"web"`, "must be a JSON object"},
		{"null", `null`, "name and namespace"},
		{"no name", `{"namespace":"shop"}`, "name and namespace"},
		{"no namespace", `{"name":"web"}`, "name and namespace"},
		{"number name", `{"name":7,"namespace":"shop"}`, "field name must be a string"},
		{"metadata not a map", `{"name":"web","namespace":"shop","metadata":["a"]}`, "field metadata"},
		{"metadata number", `{"name":"web","namespace":"shop","metadata":{"a":1}}`, "field metadata must be a string"},
		{"bad name", `{"name":"Web_1","namespace":"shop"}`, `name "Web_1"`},
		{"bad namespace", `{"name":"web","namespace":"shop.eu"}`, `namespace "shop.eu"`},
		{"trailing data", `{"name":"web","namespace":"shop"} {}`, "malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodePayload([]byte(tc.body))
			if !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("err %v, want ErrInvalidPayload", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("err %q does not say %q", err, tc.reason)
			}
		})
	}
}

func TestPayloadHookPrefersTypeThenMetadataThenDefault(t *testing.T) {
	for _, tc := range []struct {
		p    Payload
		want HookType
		err  bool
	}{
		{Payload{}, HookConfirmPromotion, false},
		{Payload{Metadata: map[string]string{"type": "confirm-rollout"}}, HookConfirmRollout, false},
		{Payload{Type: HookRollback, Metadata: map[string]string{"type": "confirm-rollout"}}, HookRollback, false},
		{Payload{Metadata: map[string]string{"type": "confirm-everything"}}, "", true},
	} {
		got, err := tc.p.Hook(HookConfirmPromotion)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%+v: got %q, %v; want %q (error %v)", tc.p, got, err, tc.want, tc.err)
		}
	}
}

func TestRunNameIsStablePerRevisionAndHook(t *testing.T) {
	p := Payload{Name: "web", Namespace: "shop", Checksum: "abc"}
	a, b := RunName(p, HookConfirmPromotion), RunName(p, HookConfirmPromotion)
	if a != b || !strings.HasPrefix(a, "web-gate-") {
		t.Fatalf("names %q and %q: want equal, prefixed web-gate-", a, b)
	}
	other := []string{
		RunName(Payload{Name: "web", Namespace: "shop", Checksum: "abd"}, HookConfirmPromotion),
		RunName(p, HookConfirmRollout),
		RunName(Payload{Name: "web", Namespace: "shop2", Checksum: "abc"}, HookConfirmPromotion),
		RunName(Payload{Name: "web", Namespace: "shop", Checksum: "abc", Metadata: map[string]string{"policy": "p"}}, HookConfirmPromotion),
	}
	for _, o := range other {
		if o == a {
			t.Errorf("a different revision, hook, namespace or policy got the same run name %q", o)
		}
	}
	long := RunName(Payload{Name: strings.Repeat("a", 250), Namespace: "shop"}, HookConfirmPromotion)
	if len(long) > 63 {
		t.Errorf("run name %q is longer than 63", long)
	}
}

// FuzzDecodePayload checks that no body panics the decoder, that what it
// accepts names a valid canary, and that an accepted payload survives a
// round trip through JSON unchanged.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{
		`{"name":"web","namespace":"shop","phase":"Progressing","checksum":"6d8f7b9c","metadata":{"policy":"p"}}`,
		`{"name":"web","namespace":"shop","metadata":{"eventMessage":"Advance web.shop canary weight 10","eventType":"Normal","timestamp":"1700000000000"}}`,
		`{"name":"a.b-c","namespace":"x","type":"rollback"}`,
		`{"name":"web"}`, `[]`, `null`, ``, `{"name":"web","namespace":"shop","metadata":{"a":1}}`,
		"{\"name\":\"w\\u0065b\",\"namespace\":\"shop\"}",
		` { "name" : "web" , "namespace" : "shop" , "metadata" : { } } `,
		`{"NAME":"web","namespace":"shop"}`, `{"name":"web","name":"api","namespace":"shop"}`,
		`{"name":"web","namespace":"shop","metadata":{"a":"1","a":"2"}}`, `{"name":null,"namespace":"shop"}`,
		`{"name":"web","namespace":"shop"}x`, `{"name":"wéb","namespace":"shop"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodePayload(body)
		if err != nil {
			if !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("error %v does not wrap ErrInvalidPayload", err)
			}
			return
		}
		if p.Name == "" || p.Namespace == "" {
			t.Fatalf("accepted %q with an empty name or namespace", body)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := DecodePayload(again)
		if err != nil {
			t.Fatalf("re-encoded %s refused: %v", again, err)
		}
		if len(p.Metadata) == 0 {
			p.Metadata = nil // omitempty drops an empty map
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed %+v into %+v", p, q)
		}
		if name := RunName(p, HookConfirmPromotion); len(name) > 63 || name == "" {
			t.Fatalf("run name %q for %+v", name, p)
		}
	})
}
