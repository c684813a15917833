-- A run's row is updated when its first step is claimed and when its steps
-- end. Room on each page lets those updates stay on the page (HOT: none of
-- the four indexes on wf.runs changes); with full pages most of them moved
-- the row and wrote four index entries each.
ALTER TABLE wf.runs SET (fillfactor = 70);
