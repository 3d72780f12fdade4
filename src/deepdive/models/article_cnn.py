"""The article's CNN ``Net``, written once against an ``nn``/``F`` namespace.

Four 3x3 convolutions without padding (3->64->128->128->64), ReLU after the
first three only, global average pooling, then 64 -> 32 -> classes with ReLU
and Dropout(0.5). For CIFAR-10 this is exactly the article's network; for other
data the first convolution's input channels and the class count follow it.
"""


def build(nn, F, input_shape, num_classes, article_exact=False):
    in_channels = int(input_shape[0])

    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            self.conv1 = nn.Conv2d(in_channels, 64, 3)
            self.conv2 = nn.Conv2d(64, 128, 3)
            self.conv3 = nn.Conv2d(128, 128, 3)
            self.conv4 = nn.Conv2d(128, 64, 3)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc1 = nn.Linear(64, 32)
            self.dropout = nn.Dropout(0.5)
            self.fc2 = nn.Linear(32, num_classes)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = F.relu(self.conv3(x))
            x = self.conv4(x)
            x = self.pool(x)
            x = x.view(-1, 64)
            x = F.relu(self.fc1(x))
            x = self.dropout(x)
            x = self.fc2(x)
            return x

    return Net()
