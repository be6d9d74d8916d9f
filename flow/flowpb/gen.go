// Package flowpb holds the protobuf form of flow.Record, generated from
// flow.proto. Kafka consumers and the collector read this schema; the Go
// code in package flow converts to and from it.
package flowpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative flow.proto
