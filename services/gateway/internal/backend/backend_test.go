package backend_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/track"
	"github.com/brook-dev/brook/services/gateway/internal/backend"
)

// lastRead is a tiny BookshelfLastRead: it answers with the limit it got as the number of books,
// fails for limit 99, stalls for limit 98, and records the request id it received.
type lastRead struct {
	bookshelfv1.UnimplementedBookshelfLastReadServer
	gotRequestID chan string
}

func (s *lastRead) ListLastRead(ctx context.Context, req *bookshelfv1.ListLastReadRequest) (*bookshelfv1.ListLastReadResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(track.MetadataRequestID); len(v) > 0 {
		s.gotRequestID <- v[0]
	}
	switch req.GetLimit() {
	case 99:
		return nil, status.Error(codes.InvalidArgument, "limit must be at most 100")
	case 98:
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &bookshelfv1.ListLastReadResponse{Books: make([]*bookshelfv1.LastReadBook, req.GetLimit())}, nil
}

func TestDialTracksBoundsAndNamesErrors(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	fake := &lastRead{gotRequestID: make(chan string, 10)}
	bookshelfv1.RegisterBookshelfLastReadServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	cc, err := backend.Dial("bookshelf-lastread", "passthrough:///"+lis.Addr().String(), backend.Options{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := bookshelfv1.NewBookshelfLastReadClient(cc)

	ctx := track.WithRequestID(context.Background(), "req-123")
	res, err := client.ListLastRead(ctx, &bookshelfv1.ListLastReadRequest{Limit: 2})
	if err != nil || len(res.GetBooks()) != 2 {
		t.Fatalf("call: %v %v", res, err)
	}
	if got := <-fake.gotRequestID; got != "req-123" {
		t.Errorf("backend got request id %q", got)
	}

	_, err = client.ListLastRead(ctx, &bookshelfv1.ListLastReadRequest{Limit: 99})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != "limit must be at most 100" {
		t.Errorf("application error changed: %v", err)
	}

	_, err = client.ListLastRead(ctx, &bookshelfv1.ListLastReadRequest{Limit: 98})
	if st := status.Convert(err); st.Code() != codes.DeadlineExceeded || st.Message() != "bookshelf-lastread: no answer in time" {
		t.Errorf("stalled backend: %v", err)
	}

	srv.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = client.ListLastRead(ctx, &bookshelfv1.ListLastReadRequest{Limit: 1})
		st := status.Convert(err)
		if st.Code() == codes.Unavailable && st.Message() == "bookshelf-lastread: no healthy instance" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend down: %v, want Unavailable naming the service", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
