//! Where marker labels go: each on the highest row where it overlaps no label already placed,
//! so a start and an alert a few seconds apart are both readable instead of one over the other.

/// For each label's horizontal extent `(left, right)` in drawing order, the row (0 = top) it
/// is drawn on.
pub fn rows(extents: &[(f64, f64)]) -> Vec<usize> {
    let mut placed: Vec<Vec<(f64, f64)>> = Vec::new();
    extents
        .iter()
        .map(|&(left, right)| {
            let free = |row: &Vec<(f64, f64)>| row.iter().all(|&(l, r)| right <= l || left >= r);
            match placed.iter().position(free) {
                Some(row) => {
                    placed[row].push((left, right));
                    row
                }
                None => {
                    placed.push(vec![(left, right)]);
                    placed.len() - 1
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn labels_apart_share_the_top_row_and_close_ones_stack() {
        assert_eq!(rows(&[(0.0, 10.0), (20.0, 30.0)]), [0, 0]);
        assert_eq!(rows(&[(0.0, 10.0), (5.0, 15.0), (12.0, 20.0)]), [0, 1, 0]);
        assert_eq!(rows(&[(0.0, 10.0), (0.0, 10.0), (0.0, 10.0)]), [0, 1, 2]);
        // Touching is not overlapping.
        assert_eq!(rows(&[(0.0, 10.0), (10.0, 20.0)]), [0, 0]);
    }

    proptest! {
        #[test]
        fn no_two_labels_on_a_row_overlap_and_no_row_is_skipped(
            spans in prop::collection::vec((0.0f64..1000.0, 1.0f64..200.0), 0..40)
        ) {
            let extents: Vec<(f64, f64)> = spans.iter().map(|&(l, w)| (l, l + w)).collect();
            let rows = rows(&extents);
            prop_assert_eq!(rows.len(), extents.len());
            for i in 0..extents.len() {
                for j in 0..i {
                    if rows[i] == rows[j] {
                        let (a, b) = (extents[i], extents[j]);
                        prop_assert!(a.1 <= b.0 || a.0 >= b.1, "{:?} and {:?} share row {}", a, b, rows[i]);
                    }
                }
                // A label goes lower only because every row above is taken where it stands.
                for row in 0..rows[i] {
                    let blocked = (0..i).any(|j| rows[j] == row && !(extents[i].1 <= extents[j].0 || extents[i].0 >= extents[j].1));
                    prop_assert!(blocked, "label {} skipped free row {}", i, row);
                }
            }
        }
    }
}
