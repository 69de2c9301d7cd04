"""What grading writes and reads back: grades.csv, results and feedback pages (report), the
nbgrader gradebook (gradebook), final scores with the TA's manual points (scores), the late
policy (late) and spreadsheet-safe CSV (tables)."""
