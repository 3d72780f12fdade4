"""The theory side's commands' library halves: Rosenblatt's perceptron, the engines stepped side by side
(parity), the article's recipe over seeds."""
