package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/mqgate/mqgate/sdk"
	pb "github.com/mqgate/mqgate/sdk/proto"
)

// strictConfig is the config of strictBackend and strictSink.
type strictConfig struct {
	Partitions *int   `json:"partitions"`
	Name       string `json:"name"`
}

// parseStrict finds every problem of a strict config: its shape, then
// partitions at least 1.
func parseStrict(data []byte) sdk.ConfigErrors {
	var c strictConfig
	var errs sdk.ConfigErrors
	errs.Add(sdk.DecodeConfig(data, &c))
	if c.Partitions != nil && *c.Partitions < 1 {
		errs.Addf("partitions", "must be at least 1, got %d", *c.Partitions)
	}
	return errs
}

// strictBackend checks its config in Configure and ValidateConfig alike.
type strictBackend struct{ memBackend }

var _ sdk.ConfigValidator = (*strictBackend)(nil)

func (b *strictBackend) Configure(_ context.Context, data []byte) error {
	return parseStrict(data).Err()
}
func (b *strictBackend) ValidateConfig(data []byte) sdk.ConfigErrors { return parseStrict(data) }

// strictSink is strictBackend's sink twin.
type strictSink struct{ memSink }

var _ sdk.ConfigValidator = (*strictSink)(nil)

func (s *strictSink) ValidateConfig(data []byte) sdk.ConfigErrors { return parseStrict(data) }

// keysOf lists the keys of errs, in order.
func keysOf(errs sdk.ConfigErrors) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Key
	}
	return out
}

// withoutValidateConfig registers the Backend service as a plugin built
// before ValidateConfig existed serves it.
func withoutValidateConfig(srv *grpc.Server) error {
	desc := pb.Backend_ServiceDesc
	desc.Methods = slices.DeleteFunc(slices.Clone(desc.Methods), func(m grpc.MethodDesc) bool { return m.MethodName == "ValidateConfig" })
	srv.RegisterService(&desc, pb.UnimplementedBackendServer{})
	return nil
}

func TestValidateConfigOverGRPC(t *testing.T) {
	const bad = `{"partitons": 3, "name": 5, "partitions": 0}`
	wantBad := []string{"name", "partitons", "partitions"}
	for _, tc := range []struct {
		name     string
		plugin   func(t *testing.T) any
		config   string
		wantKeys []string
		wantErr  error
	}{
		{"backend accepts", func(t *testing.T) any { return dial(t, &strictBackend{}) }, `{"partitions": 3}`, nil, nil},
		{"backend reports every problem", func(t *testing.T) any { return dial(t, &strictBackend{}) }, bad, wantBad, nil},
		{"sink reports every problem", func(t *testing.T) any { return dialSink(t, &strictSink{}) }, bad, wantBad, nil},
		{"backend without ConfigValidator", func(t *testing.T) any { return dial(t, &memBackend{}) }, bad, nil, sdk.ErrConfigNotValidated},
		{"sink without ConfigValidator", func(t *testing.T) any { return dialSink(t, &memSink{}) }, bad, nil, sdk.ErrConfigNotValidated},
		{"plugin built before ValidateConfig", func(t *testing.T) any { return dialServer(t, withoutValidateConfig) }, bad, nil, sdk.ErrConfigNotValidated},
		{"implementation in this process", func(*testing.T) any { return &strictBackend{} }, bad, wantBad, nil},
		{"implementation without ConfigValidator", func(*testing.T) any { return &memBackend{} }, bad, nil, sdk.ErrConfigNotValidated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs, err := sdk.ValidateConfig(context.Background(), tc.plugin(t), []byte(tc.config))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ValidateConfig error = %v, want %v", err, tc.wantErr)
			}
			if got := keysOf(errs); !slices.Equal(got, tc.wantKeys) {
				t.Fatalf("ValidateConfig reported keys %q (%v), want %q", got, errs, tc.wantKeys)
			}
			for _, e := range errs {
				if e.Msg == "" {
					t.Errorf("problem with %s has no message", e.Key)
				}
			}
		})
	}
}

// A config refused for several reasons reaches the gateway with all of
// them, each naming its key; a single problem still arrives as the
// *sdk.ConfigError it always did.
func TestConfigureReportsEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		wantKeys     []string
		wantMsgs     []string
	}{
		{"several problems", `{"partitons": 3, "name": 5, "partitions": 0}`,
			[]string{"name", "partitons", "partitions"},
			[]string{"want a string, got a JSON number", "unknown key; did you mean partitions?", "must be at least 1, got 0"}},
		{"one problem", `{"partitions": -2}`, []string{"partitions"}, []string{"must be at least 1, got -2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := dial(t, &strictBackend{}).Configure(context.Background(), []byte(tc.config))
			errs := sdk.ConfigErrorsOf(err)
			if got := keysOf(errs); !slices.Equal(got, tc.wantKeys) {
				t.Fatalf("Configure = %v; reported keys %q, want %q", err, got, tc.wantKeys)
			}
			for i, e := range errs {
				if e.Msg != tc.wantMsgs[i] {
					t.Errorf("problem %d (%s) = %q, want %q", i, e.Key, e.Msg, tc.wantMsgs[i])
				}
			}
			if ce, ok := errors.AsType[*sdk.ConfigError](err); !ok || ce.Key != tc.wantKeys[0] {
				t.Errorf("errors.As finds %v, want the problem with %s", ce, tc.wantKeys[0])
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	var errs sdk.ConfigErrors
	if errs.Err() != nil {
		t.Fatal("an empty ConfigErrors must be a nil error")
	}
	errs.Add(nil)
	errs.Add(&sdk.ConfigError{Key: "a", Msg: "bad"})
	errs.Add(fmt.Errorf("decoding: %w", sdk.ConfigErrors{{Key: "b.0", Msg: "worse"}, {Key: "c", Msg: "worst"}}))
	errs.Add(errors.New("not a JSON object"))
	errs.Addf("d", "want %d", 1)
	if got, want := keysOf(errs), []string{"a", "b.0", "c", "", "d"}; !slices.Equal(got, want) {
		t.Fatalf("keys = %q, want %q", got, want)
	}
	if got, want := errs.Error(), "a: bad; b.0: worse; c: worst; not a JSON object; d: want 1"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		key  string
		want bool
	}{{"a", true}, {"b", true}, {"b.0", true}, {"c", true}, {"ab", false}, {"e", false}} {
		if got := errs.Has(tc.key); got != tc.want {
			t.Errorf("Has(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
	if got := sdk.ConfigErrorsOf(errors.New("x")); got != nil {
		t.Errorf("ConfigErrorsOf(a plain error) = %v, want nil", got)
	}
	if !strings.Contains(fmt.Sprint(errs.Err()), "d: want 1") {
		t.Errorf("Err() = %v", errs.Err())
	}
}

// A plugin that serves no Backend at all is not mistaken for one that does
// not validate its config.
func TestValidateConfigOfWrongKind(t *testing.T) {
	b := dialServer(t, func(srv *grpc.Server) error { return (&sdk.SinkPlugin{Impl: &strictSink{}}).GRPCServer(nil, srv) })
	_, err := sdk.ValidateConfig(context.Background(), b, []byte(`{}`))
	if err == nil || errors.Is(err, sdk.ErrConfigNotValidated) || !strings.Contains(err.Error(), "does not serve a backend") {
		t.Fatalf("ValidateConfig of a sink plugin as a backend = %v, want an error saying it serves no backend", err)
	}
}
