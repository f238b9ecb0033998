"""The fault catalogue (issue 25): how posezoo meets bad inputs, broken files and interruptions."""
