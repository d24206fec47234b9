// Package pitr owns point-in-time recovery: archiving a node's binlogs into
// the storage as GTID-keyed segments (ArchivePass, Follow), computing the
// restorable windows from those segments and the backups (Coverage),
// restoring the newest backup before a target and replaying the archived
// binlogs up to it (PITR), and the retention of backups and segments
// together (PlanRetention, Expire).
//
// It depends on package backup for the catalog of backups, the stored form
// of objects (sealer) and the staged restore; backup must never import
// pitr. pitr must not import cli or anything under cmd/.
package pitr
