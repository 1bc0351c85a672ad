//! Lesson content: quiz questions and how an attempt is graded, and Markdown rendered safely.

use serde::{Deserialize, Serialize};

/// Most questions one quiz may hold.
pub const MAX_QUESTIONS: usize = 100;
/// Most choices one question may offer.
pub const MAX_CHOICES: usize = 20;

/// One multiple-choice question. `correct` lists the indexes of the right choices; an answer is right when it
/// picks exactly those.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// The question.
    pub prompt: String,
    /// The choices, in the order shown.
    pub choices: Vec<String>,
    /// Indexes of the right choices (at least one).
    pub correct: Vec<usize>,
}

/// A question as learners see it: without the answer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct QuestionView {
    /// The question.
    pub prompt: String,
    /// The choices.
    pub choices: Vec<String>,
    /// Whether more than one choice is right.
    pub multiple: bool,
}

impl Question {
    /// Learners' view.
    pub fn view(&self) -> QuestionView {
        QuestionView {
            prompt: self.prompt.clone(),
            choices: self.choices.clone(),
            multiple: self.correct.len() > 1,
        }
    }
}

/// Check a quiz's questions; the error names the offending field (`questions[2].correct`, …).
pub fn check_questions(questions: &[Question]) -> Result<(), (String, String)> {
    if questions.is_empty() || questions.len() > MAX_QUESTIONS {
        return Err((
            "questions".into(),
            format!("a quiz holds between 1 and {MAX_QUESTIONS} questions"),
        ));
    }
    for (i, q) in questions.iter().enumerate() {
        let prompt = q.prompt.trim();
        if prompt.is_empty() || prompt.chars().count() > 2000 {
            return Err((format!("questions[{i}].prompt"), "must be 1 to 2000 characters".into()));
        }
        if q.choices.len() < 2 || q.choices.len() > MAX_CHOICES {
            return Err((
                format!("questions[{i}].choices"),
                format!("offer between 2 and {MAX_CHOICES} choices"),
            ));
        }
        for (j, c) in q.choices.iter().enumerate() {
            if c.trim().is_empty() || c.chars().count() > 500 {
                return Err((
                    format!("questions[{i}].choices[{j}]"),
                    "must be 1 to 500 characters".into(),
                ));
            }
        }
        if q.correct.is_empty() {
            return Err((
                format!("questions[{i}].correct"),
                "name at least one right choice".into(),
            ));
        }
        if let Some(bad) = q.correct.iter().find(|c| **c >= q.choices.len()) {
            return Err((
                format!("questions[{i}].correct"),
                format!("{bad} is not a choice (there are {})", q.choices.len()),
            ));
        }
        let mut seen = q.correct.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != q.correct.len() {
            return Err((format!("questions[{i}].correct"), "names a choice twice".into()));
        }
    }
    Ok(())
}

/// Grade an attempt: the percentage (0–100, rounded down) of questions answered exactly right.
/// `answers[i]` are the choices picked for question `i`.
pub fn grade(questions: &[Question], answers: &[Vec<usize>]) -> Result<i64, (String, String)> {
    if answers.len() != questions.len() {
        return Err((
            "answers".into(),
            format!(
                "answer each of the {} questions (got {})",
                questions.len(),
                answers.len()
            ),
        ));
    }
    let mut right = 0i64;
    for (i, (q, a)) in questions.iter().zip(answers).enumerate() {
        if let Some(bad) = a.iter().find(|c| **c >= q.choices.len()) {
            return Err((
                format!("answers[{i}]"),
                format!("{bad} is not a choice of this question"),
            ));
        }
        let mut picked = a.clone();
        picked.sort_unstable();
        picked.dedup();
        let mut correct = q.correct.clone();
        correct.sort_unstable();
        if picked == correct {
            right += 1;
        }
    }
    Ok(right * 100 / questions.len().max(1) as i64)
}

/// Render lesson Markdown to HTML that is safe to put in a page: raw HTML in the source is escaped, link
/// and image targets are limited to http(s) and mailto, and nothing can run script.
pub fn render_markdown(source: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, html};
    let parser =
        Parser::new_ext(source, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).map(|event| match event {
            // Raw HTML is shown as text, never interpreted.
            Event::Html(text) | Event::InlineHtml(text) => Event::Text(text),
            other => other,
        });
    let mut unsafe_html = String::with_capacity(source.len() * 3 / 2);
    html::push_html(&mut unsafe_html, parser);
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&unsafe_html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(correct: &[usize]) -> Question {
        Question {
            prompt: "Which?".into(),
            choices: vec!["a".into(), "b".into(), "c".into()],
            correct: correct.to_vec(),
        }
    }

    #[test]
    fn grading_needs_exactly_the_right_choices() {
        let quiz = [q(&[0]), q(&[1, 2])];
        assert_eq!(grade(&quiz, &[vec![0], vec![2, 1]]), Ok(100));
        assert_eq!(grade(&quiz, &[vec![0], vec![1]]), Ok(50));
        assert_eq!(grade(&quiz, &[vec![0, 1], vec![]]), Ok(0));
        assert!(grade(&quiz, &[vec![0]]).is_err());
        assert_eq!(grade(&quiz, &[vec![7], vec![1]]).unwrap_err().0, "answers[0]");
    }

    #[test]
    fn questions_are_checked_by_field() {
        assert_eq!(check_questions(&[q(&[3])]).unwrap_err().0, "questions[0].correct");
        assert_eq!(
            check_questions(&[q(&[0]), q(&[])]).unwrap_err().0,
            "questions[1].correct"
        );
        assert!(check_questions(&[q(&[0, 2])]).is_ok());
    }

    #[test]
    fn markdown_cannot_carry_script() {
        let html = render_markdown(
            "# Hi\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)>",
        );
        assert!(html.contains("<h1>Hi</h1>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(render_markdown("**bold** [site](https://example.com)").contains("<strong>bold</strong>"));
    }
}
