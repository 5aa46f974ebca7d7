// Test support: a plain TCP client that speaks just enough HTTP/1.1 to check servers.
#pragma once

#include <cerrno>
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <map>
#include <string>
#include <vector>

namespace intercomm::testing {

// A plain TCP client that speaks just enough HTTP/1.1 to check the server.
class Client {
 public:
  // `read_timeout_s`: a test never waits forever for a response.
  explicit Client(std::uint16_t port, int read_timeout_s = 10) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    timeval timeout{read_timeout_s, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~Client() { close(fd_); }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  void send(const std::string& bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
  }

  struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
  };

  // Reads one response; status 0 when the connection closed first.
  Response read() {
    Response response;
    while (buffer_.find("\r\n\r\n") == std::string::npos) {
      if (!fill()) return response;
    }
    const auto end = buffer_.find("\r\n\r\n");
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    response.status = std::stoi(head.substr(9, 3));
    std::size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      const auto next = head.find("\r\n", pos + 2);
      const std::string line =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      const auto colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      response.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      pos = next;
    }
    const std::size_t length = std::stoul(response.headers["content-length"]);
    while (buffer_.size() < length) {
      if (!fill()) break;
    }
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  // One request; `headers` are full lines without CRLF, e.g. "Authorization: Bearer x".
  Response request(const std::string& method, const std::string& target, const std::string& body = "",
                   const std::vector<std::string>& headers = {}) {
    std::string text = method + " " + target + " HTTP/1.1\r\nHost: test\r\n";
    for (const auto& header : headers) text += header + "\r\n";
    if (!body.empty() || method == "POST") text += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    text += "\r\n" + body;
    send(text);
    return read();
  }

  // True when the server closed the connection (read returns 0).
  bool closed_by_server() {
    char byte;
    return recv(fd_, &byte, 1, 0) == 0;
  }

 private:
  bool fill() {
    char chunk[4096];
    ssize_t n = 0;
    do {
      n = recv(fd_, chunk, sizeof chunk, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_;
  bool connected_ = false;
  std::string buffer_;
};

}  // namespace intercomm::testing
