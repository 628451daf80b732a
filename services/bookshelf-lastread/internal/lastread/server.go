package lastread

import (
	"context"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limits of ListLastRead. A limit above MaxLimit is refused (400 naming "limit") rather than
// clamped, so a client asking for 500 learns it cannot have them instead of silently getting 100.
const (
	DefaultLimit = 5
	MaxLimit     = Capacity
)

// Server serves the view over gRPC (and REST through grpc-gateway).
type Server struct {
	bookshelfv1.UnimplementedBookshelfLastReadServer
	view *Projection
}

// NewServer returns the gRPC service over view.
func NewServer(view *Projection) *Server { return &Server{view: view} }

// ListLastRead returns the books read most recently, newest first.
func (s *Server) ListLastRead(ctx context.Context, req *bookshelfv1.ListLastReadRequest) (*bookshelfv1.ListLastReadResponse, error) {
	limit := int(req.GetLimit())
	switch {
	case limit < 0 || limit > MaxLimit:
		return nil, status.Errorf(codes.InvalidArgument, "limit: must be between 1 and %d (0 or absent means %d), got %d", MaxLimit, DefaultLimit, limit)
	case limit == 0:
		limit = DefaultLimit
	}
	entries, err := s.view.Latest(ctx, limit)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "last-read view: %v", err)
	}
	resp := &bookshelfv1.ListLastReadResponse{Books: make([]*bookshelfv1.LastReadBook, 0, len(entries))}
	for _, e := range entries {
		resp.Books = append(resp.Books, &bookshelfv1.LastReadBook{
			Id: e.ID, Title: e.Title, Author: e.Author, ReadAt: timestamppb.New(e.ReadAt),
		})
	}
	return resp, nil
}
